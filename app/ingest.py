"""Event ingestion: commit events (and popularity), then fold them into their users' vectors in Milvus."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .events import Event, EventStore
from .store import DENSE_FIELD, ProductStore
from .users import UserVectorStore, accumulate

log = logging.getLogger(__name__)


class UnknownProducts(Exception):
    """Some events name products that are not in the catalogue (positions in the batch)."""

    def __init__(self, positions: list[int], product_ids: list[str]):
        super().__init__(f"unknown product_id {product_ids[0]!r}")
        self.positions, self.product_ids = positions, product_ids


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # newly stored
    duplicates: int  # event_id seen before (not counted twice)
    vectors_updated: bool  # False: stored, user vectors pending (Milvus unreachable)


class EventIngestor:
    """The one ingestion path, used by POST /events, the seed scripts and the rebuild command."""

    def __init__(self, events: EventStore, products: ProductStore, users: UserVectorStore,
                 weights: dict[str, float], user_half_life_days: float):
        self.events = events
        self.products = products
        self.users = users
        self.weights = weights
        self.half_life_s = user_half_life_days * 86400.0

    def ingest(self, batch: Sequence[Event]) -> IngestResult:
        """Store the batch atomically (all or nothing), then update the users' vectors.

        The events are committed before this returns; if Milvus fails after the commit, the vector
        updates stay pending in the event table and `apply_pending` applies them later.
        """
        product_ids = sorted({event.product_id for event in batch})
        found = self.products.get(product_ids, with_vectors=True)
        unknown = [i for i, event in enumerate(batch) if event.product_id not in found]
        if unknown:
            raise UnknownProducts(unknown, [batch[i].product_id for i in unknown])
        categories = {product_id: product["category"] for product_id, product in found.items()}
        users = {event.user_id for event in batch}
        with self.events.write_transaction(lock_users=users) as connection:
            inserted = self.events.add(connection, batch, categories)
        vectors = {product_id: product[DENSE_FIELD] for product_id, product in found.items()}
        try:
            self.apply_pending({event.user_id for event in inserted}, vectors)
        except Exception:  # Milvus unreachable or failing: the events are safe, the update waits
            log.exception("user vector update deferred for %d users", len(users))
            return IngestResult(len(inserted), len(batch) - len(inserted), False)
        return IngestResult(len(inserted), len(batch) - len(inserted), True)

    def apply_pending(self, user_ids: Iterable[str], known_vectors: dict[str, np.ndarray] | None = None) -> int:
        """Fold the users' pending events into their vectors; returns how many events were applied."""
        user_ids = sorted(set(user_ids))
        if not user_ids:
            return 0
        with self.events.write_transaction(lock_users=user_ids) as connection:
            pending = self.events.events_of(connection, user_ids, pending_only=True)
            if not pending:
                return 0
            self._fold(connection, pending, self.users.get(user_ids), known_vectors or {})
        return len(pending)

    def apply_all_pending(self) -> int:
        """Apply every pending update (e.g. after Milvus was unreachable)."""
        applied = 0
        while users := self.events.users_with_pending_events():
            applied += self.apply_pending(users)
        return applied

    def rebuild(self, user_ids: Sequence[str] | None = None, chunk_size: int = 200) -> int:
        """Recompute user vectors from the whole event log; returns the number of users written."""
        user_ids = list(user_ids) if user_ids is not None else self.events.all_user_ids()
        for start in range(0, len(user_ids), chunk_size):
            chunk = user_ids[start:start + chunk_size]
            with self.events.write_transaction(lock_users=chunk) as connection:
                self._fold(connection, self.events.events_of(connection, chunk), {}, {})
        return len(user_ids)

    def _fold(self, connection, rows: list, current: dict, known_vectors: dict[str, np.ndarray]) -> None:
        """Write the vectors of `current` users (absent: from zero) with `rows` folded in; mark rows applied."""
        by_user: dict[str, list] = {}
        for row_id, event in rows:
            by_user.setdefault(event.user_id, []).append((row_id, event))
        vectors = self._product_vectors({event.product_id for _, event in rows}, known_vectors)
        self.users.upsert([
            accumulate(current.get(user_id), user_id, user_rows, vectors, self.weights, self.half_life_s,
                       self.users.dimension)
            for user_id, user_rows in by_user.items()
        ])
        self.events.mark_applied(connection, [row_id for row_id, _ in rows])

    def _product_vectors(self, product_ids: set[str], known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = sorted(product_ids - set(known))
        fetched = self.products.get(missing, with_vectors=True) if missing else {}
        return {**known, **{product_id: product[DENSE_FIELD] for product_id, product in fetched.items()}}
