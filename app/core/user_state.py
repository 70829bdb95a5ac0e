"""What recommendations need to know of a user, read with few round trips and kept until their next event.

One SQL read gives the products the user touched, by event type, with their latest time (the recent products,
the products to exclude) and the user's latest event row id. The Milvus reads (the user vector, the vectors
of the recent products), for the content sources only, run concurrently and are kept per process, keyed by
that id: the user's next event, through any process, changes the key. A user vector that has not yet folded in
every event is not kept.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from app.storage.events import EventStore
from app.storage.products import DENSE_FIELD, ProductStore
from app.storage.users import UserVectorStore


@dataclass(frozen=True)
class UserState:
    recent: list[str]  # the latest distinct products touched, newest first
    touched: dict[str, set[str]]  # event type → the products the user has events of that type with
    latest: int  # the row id of the user's latest event (what the kept Milvus part is keyed by)
    vector: np.ndarray | None = None  # the user vector, unit length (None: none yet, or not read)
    recent_vector: np.ndarray | None = None  # the mean of the recent products' vectors, unit length (None: not read)

    def consumed(self, event_types: Sequence[str]) -> set[str]:
        """The products the user has events of these types with."""
        return set().union(*(self.touched.get(event_type, set()) for event_type in event_types))


class UserStates:
    """Reads UserState; keeps the Milvus part of the last `size` users' (0: nothing kept)."""

    def __init__(self, events: EventStore, users: UserVectorStore, products: ProductStore, recent_items: int,
                 pool: Executor, size: int = 10_000):
        self.events, self.users, self.products = events, users, products
        self.recent_items, self.pool, self.size = recent_items, pool, size
        self._kept: OrderedDict[str, tuple[int, np.ndarray | None, np.ndarray | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: str, vectors: bool = True) -> UserState:
        """The user's state; without `vectors`, the SQL read alone (vector and recent_vector None: `with_vectors`
        adds them later)."""
        latest_of: dict[str, tuple[float, int]] = {}
        touched: dict[str, set[str]] = {}
        for product_id, event_type, at, row_id in self.events.touched(user_id):
            touched.setdefault(event_type, set()).add(product_id)
            seen_at, seen_id = latest_of.get(product_id, (at, row_id))
            latest_of[product_id] = (max(seen_at, at), max(seen_id, row_id))
        recent = sorted(latest_of, key=lambda product_id: (-latest_of[product_id][0], -latest_of[product_id][1]))
        latest = max((row_id for _, row_id in latest_of.values()), default=0)
        state = UserState(recent[:self.recent_items], touched, latest)
        return self.with_vectors(user_id, state) if vectors else state

    def with_vectors(self, user_id: str, state: UserState) -> UserState:
        """`state` (read without vectors) with its Milvus part: the user vector and the recent products' mean."""
        recent, latest = state.recent, state.latest
        with self._lock:
            kept = self._kept.get(user_id)
            if kept is not None:
                self._kept.move_to_end(user_id)
        if kept is not None and kept[0] == latest:
            return replace(state, vector=kept[1], recent_vector=kept[2])
        user_future = self.pool.submit(self.users.get, [user_id])
        recent_vector = self._mean_vector(recent)
        user = user_future.result().get(user_id)
        vector = _unit(user.vector) if user is not None and np.any(user.vector) else None
        if self.size and (user.applied_through >= latest if user is not None else latest == 0):
            with self._lock:
                self._kept[user_id] = (latest, vector, recent_vector)
                self._kept.move_to_end(user_id)
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
        return replace(state, vector=vector, recent_vector=recent_vector)

    def _mean_vector(self, product_ids: list[str]) -> np.ndarray | None:
        if not product_ids:
            return None
        found = self.products.candidate_rows(product_ids)
        return _unit(np.mean([row[DENSE_FIELD] for row in found.values()], axis=0)) if found else None


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm else vector
