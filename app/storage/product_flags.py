"""Every product's flags (id, active flag, category) kept in process, for filtering recommendation candidates:
reading them from Milvus Lite took ~30 ms for 300 candidates at 100,000 products, one scan of all of them ~1 s.

One scan loads them when first asked (in a background thread: until it is done, callers read from Milvus), then
again every PRODUCT_FLAGS_SECONDS; the process's own writes update them at once, another process's writes show at
the next scan. A catalogue of more than PRODUCT_FLAGS_MAX products is not kept. Flags only filter candidates:
recommendations read their answer afresh before serving it (app/core/recommend.py).
"""
from __future__ import annotations

import logging
import sys
import threading
from typing import Callable, Iterable

log = logging.getLogger(__name__)


class ProductFlags:
    """product_id → {product_id, active, category} of the whole catalogue, refreshed by `scan` every `seconds`."""

    def __init__(self, scan: Callable[[], list[dict]], count: Callable[[], int], seconds: float, max_products: int):
        self._scan, self._count = scan, count
        self.seconds, self.max_products = seconds, max_products
        self._rows: dict[str, dict] | None = None  # None: not loaded (or too many products)
        self._written: dict[str, dict | None] | None = None  # own writes during a scan (None: deleted)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._run_id = 0  # the background thread's: stop() ends it
        self._thread: threading.Thread | None = None

    def get(self, product_ids: Iterable[str]) -> tuple[dict[str, dict], list[str]] | None:
        """(flags of the ids it holds, the ids it does not: e.g. written by another process since the last scan);
        None while nothing is loaded. The first call starts the background scans (after any fork)."""
        if self.max_products <= 0:
            return None
        if self._thread is None:
            self._start()
        rows = self._rows
        if rows is None:
            return None
        found, missing = {}, []
        for product_id in product_ids:
            row = rows.get(product_id)
            if row is None:
                missing.append(product_id)
            else:
                found[product_id] = row
        return found, missing

    def put(self, rows: Iterable[dict]) -> None:
        """The process wrote these products (whole rows)."""
        self._apply({row["product_id"]: flags(row) for row in rows})

    def forget(self, product_ids: Iterable[str]) -> None:
        """The process deleted these products."""
        self._apply(dict.fromkeys(product_ids))

    def reset(self) -> None:
        """Another collection serves: drop everything and scan again now."""
        with self._lock:
            self._rows = None
        self._wake.set()

    def refresh(self) -> None:
        """Scan the catalogue now (own writes made meanwhile win over what the scan read)."""
        if self.max_products <= 0 or self._count() > self.max_products:
            with self._lock:
                self._rows = None
            return
        with self._lock:
            self._written, run_id = {}, self._run_id
        try:
            rows = {row["product_id"]: flags(row) for row in self._scan()}
        except BaseException:
            with self._lock:
                self._written = None
            raise
        with self._lock:
            _merge(rows, self._written)
            self._written = None
            if run_id == self._run_id:  # not stopped meanwhile
                self._rows = rows

    def stop(self) -> None:
        """End the background scans and drop the flags (a later `get` starts again)."""
        with self._lock:
            self._run_id += 1
            self._thread, self._rows = None, None
        self._wake.set()

    def _apply(self, changes: dict[str, dict | None]) -> None:
        with self._lock:
            if self._written is not None:
                self._written.update(changes)
            if self._rows is not None:
                _merge(self._rows, changes)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(self._run_id,), name="product-flags",
                                                daemon=True)
                self._thread.start()

    def _run(self, run_id: int) -> None:
        scan = self._rows is None  # loaded already (refresh() called): the next scan after `seconds`
        while run_id == self._run_id:
            if scan:
                try:
                    self.refresh()
                except Exception as exc:  # Milvus away: candidates are read from it meanwhile
                    log.warning("scanning the product flags failed (%s): retried in %.0f s", exc, self.seconds)
            scan = True
            self._wake.wait(self.seconds)
            self._wake.clear()


def flags(row: dict) -> dict:
    """The row's flags (~300 bytes a product kept, its category string shared)."""
    return {"product_id": row["product_id"], "active": bool(row["active"]), "category": sys.intern(row["category"])}


def _merge(rows: dict[str, dict], changes: dict[str, dict | None]) -> None:
    for product_id, row in changes.items():
        if row is None:
            rows.pop(product_id, None)
        else:
            rows[product_id] = row
