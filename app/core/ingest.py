"""Event ingestion: commit events (and popularity), then fold them into their users' vectors in Milvus.

The event rows are the outbox of the vector updates: a row stays pending until its user's vector holds it.
Updates that could not be applied (Milvus or the database failing after the commit) are retried by the next
event of the same user, and by a background thread of the process that deferred them, until none is left.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import select

from app.core.user_vectors import accumulate
from app.storage.availability import StoreUnavailable, summary, unavailable_dependency
from app.storage.events import Event, EventStore, product_popularity
from app.storage.products import DENSE_FIELD, ProductStore
from app.storage.users import UserVectorStore

log = logging.getLogger(__name__)

PENDING_RETRY_SECONDS = 5.0


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
        self._retry_lock = threading.Lock()
        self._retry_thread: threading.Thread | None = None
        self._leftovers_checked = False  # pending updates left by an earlier process are looked for once

    def ingest(self, batch: Sequence[Event]) -> IngestResult:
        """Store the batch atomically (all or nothing), then update the users' vectors.

        The events are committed before this returns. If the vector update fails after the commit, the
        events stay pending and are applied in the background (`retry_pending_in_background`).
        """
        categories, vectors = self._catalogue_entries(batch)
        users = {event.user_id for event in batch}
        with self.events.write_transaction(lock_users=users) as connection:
            inserted = self.events.add(connection, batch, categories)
        try:
            self.apply_pending({event.user_id for event in inserted}, vectors)
            vectors_updated = True
        except Exception as exc:  # the events are committed: their users' vectors wait for the retry
            if unavailable_dependency(exc) is None:
                log.exception("user-vector update of %d users failed; retried in the background", len(users))
            else:
                log.warning("user-vector update of %d users deferred: %s", len(users), summary(exc))
            vectors_updated = False
        if not vectors_updated or not self._leftovers_checked:
            self._leftovers_checked = True
            self.retry_pending_in_background()
        return IngestResult(len(inserted), len(batch) - len(inserted), vectors_updated)

    def _catalogue_entries(self, batch: Sequence[Event]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
        """Category and vector of each product of the batch; UnknownProducts for those not in the catalogue.

        While Milvus is unreachable, a product that has had events counts as known, with the category the
        popularity table holds, and its vector is read when the pending update is applied; a product never
        seen cannot be checked, so the batch is refused with StoreUnavailable (nothing is stored).
        """
        product_ids = sorted({event.product_id for event in batch})
        try:
            found = self.products.get(product_ids, fields=("product_id", "category", DENSE_FIELD))
        except StoreUnavailable:
            categories = self._categories_seen(product_ids)
            unseen = [product_id for product_id in product_ids if product_id not in categories]
            if unseen:
                raise StoreUnavailable(f"product {unseen[0]!r} cannot be checked while Milvus is unreachable") from None
            return categories, {}
        unknown = [i for i, event in enumerate(batch) if event.product_id not in found]
        if unknown:
            raise UnknownProducts(unknown, [batch[i].product_id for i in unknown])
        return ({product_id: product["category"] for product_id, product in found.items()},
                {product_id: product[DENSE_FIELD] for product_id, product in found.items()})

    def _categories_seen(self, product_ids: Sequence[str]) -> dict[str, str]:
        """product_id → category of the products that have had events (their popularity rows)."""
        with self.events.engine.connect() as connection:
            return dict(connection.execute(
                select(product_popularity.c.product_id, product_popularity.c.category)
                .where(product_popularity.c.product_id.in_(list(product_ids)))
            ).all())

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

    def retry_pending_in_background(self) -> None:
        """Start this process's retry thread unless it runs: it applies pending updates until none is left."""
        with self._retry_lock:
            if self._retry_thread is None:
                self._retry_thread = threading.Thread(
                    target=self._apply_pending_until_none_left, name="pending-user-vectors", daemon=True)
                self._retry_thread.start()

    def _apply_pending_until_none_left(self) -> None:
        """Every PENDING_RETRY_SECONDS while that fails; the thread ends when no update is pending."""
        while True:
            try:
                with self._retry_lock:  # a deferral after this check starts a new thread
                    if not self.events.users_with_pending_events(limit=1):
                        self._retry_thread = None
                        return
                self.users.count()  # a probe outside any lock: a hung Milvus must not hold the event locks
                if applied := self.apply_all_pending():
                    log.info("applied %d pending user-vector updates", applied)
            except Exception as exc:
                log.warning("pending user-vector updates wait (%s); next attempt in %.0f s", summary(exc),
                            PENDING_RETRY_SECONDS)
                time.sleep(PENDING_RETRY_SECONDS)

    def rebuild(self, user_ids: Sequence[str] | None = None, chunk_size: int = 200,
                product_vectors: dict[str, np.ndarray] | None = None) -> int:
        """Recompute user vectors from the whole event log; returns the number of users written.
        `product_vectors`: vectors already read (the others are read from Milvus)."""
        user_ids = list(user_ids) if user_ids is not None else self.events.all_user_ids()
        for start in range(0, len(user_ids), chunk_size):
            chunk = user_ids[start:start + chunk_size]
            with self.events.write_transaction(lock_users=chunk) as connection:
                self._fold(connection, self.events.events_of(connection, chunk), {}, product_vectors or {})
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
        fetched = self.products.get(missing, fields=("product_id", DENSE_FIELD)) if missing else {}
        return {**known, **{product_id: product[DENSE_FIELD] for product_id, product in fetched.items()}}
