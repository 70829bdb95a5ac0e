"""A per-process cache of the product fields recommendations read for their candidate unions (id, active flag,
category, vector): bounded (least recently used out) and timed (a write by another process shows once its
entries expire). The process's own writes invalidate the ids they touch; a read that overlapped a write does not
store what it read."""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from cachetools import TTLCache


class RowCache:
    """product_id → row, for at most `size` products and `seconds` each (size 0: nothing kept)."""

    def __init__(self, size: int, seconds: float):
        self.size = size
        self._rows: TTLCache = TTLCache(maxsize=max(size, 1), ttl=seconds)
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every invalidation: a read that overlapped one is not stored

    def get(self, product_ids: Iterable[str], read: Callable[[list[str]], dict[str, dict]]) -> dict[str, dict]:
        """product_id → row for the ids that exist: cached ones, the others by `read(missing ids)`."""
        ids = list(dict.fromkeys(product_ids))
        if not self.size:
            return read(ids)
        with self._lock:
            found = {product_id: self._rows[product_id] for product_id in ids if product_id in self._rows}
            generation = self._generation
        missing = [product_id for product_id in ids if product_id not in found]
        if missing:
            fresh = read(missing)
            with self._lock:
                if generation == self._generation:
                    self._rows.update(fresh)
            found.update(fresh)
        return {product_id: found[product_id] for product_id in ids if product_id in found}

    def invalidate(self, product_ids: Iterable[str] | None = None) -> None:
        """Forget these products (None: all)."""
        with self._lock:
            self._generation += 1
            if product_ids is None:
                self._rows.clear()
            else:
                for product_id in product_ids:
                    self._rows.pop(product_id, None)
