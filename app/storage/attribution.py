"""Result attribution: every listed answer gets a request id, its shown lists go to an impression log, and
events may name the (request id, position) that led to them.

Impressions are buffered in memory and written by a background thread every IMPRESSION_FLUSH_SECONDS (one
multi-row INSERT), so a search pays for a dict append, and a crash loses at most that much of the log; the
events themselves are written synchronously as before. Rows older than IMPRESSION_RETENTION_DAYS are deleted.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, delete, select
from sqlalchemy.engine import Engine

from app.storage.events import Event, _dialect_insert
from app.storage.sql_tables import LazyTables

log = logging.getLogger(__name__)

MAX_BUFFERED = 100_000  # impressions kept while the database does not answer; older ones are dropped
RETENTION_CHECK_SECONDS = 600.0

metadata = MetaData()

impressions = Table(
    "impressions", metadata,
    Column("request_id", String(32), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("surface", String(16), nullable=False),  # search | recommendations | similar
    Column("user_id", String(64)),
    Column("experiment_id", String(32)),
    Column("variant", String(64)),
    Column("params", JSON, nullable=False),  # the settings the list was made with
    Column("product_ids", JSON, nullable=False),  # in the order shown: position p is product_ids[p - 1]
    Index("ix_impressions_created", "created_at"),
    Index("ix_impressions_experiment", "experiment_id", "variant"),
)

event_attributions = Table(
    "event_attributions", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("request_id", String(32), nullable=False),
    Column("position", Integer, nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("experiment_id", String(32)),
    Column("variant", String(64)),
    Index("ix_attributions_request", "request_id"),
    Index("ix_attributions_experiment", "experiment_id", "variant"),
)


class AttributionRejected(ValueError):
    """An event's attribution names no logged list, or a position outside it or showing another product."""

    def __init__(self, code: str, message: str, field: str):
        super().__init__(message)
        self.code, self.field = code, field


@dataclass(frozen=True)
class Assignment:
    """The experiment variant a user was served."""

    experiment_id: str
    variant: str
    params: dict


class ImpressionLog:
    """Buffered impressions of one process and the attribution of events to them."""

    def __init__(self, engine: Engine, enabled: bool, flush_seconds: float, retention_days: float):
        self.engine = engine
        self.enabled = enabled
        self.flush_seconds = flush_seconds
        self.retention_s = retention_days * 86400.0
        self._buffer: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_purge = 0.0
        self._tables = LazyTables(metadata, engine)  # created on the first database access

    def init_schema(self) -> None:
        self._tables.ensure()

    # ---- impressions ----------------------------------------------------------------------------
    def present(self, surface: str, user_id: str | None, results: list[dict], params: dict,
                assignment: Assignment | None = None) -> dict:
        """Number the results (position from 1), log the impression; the answer's request_id and experiment."""
        for position, item in enumerate(results, start=1):
            item["position"] = position
        request_id = uuid.uuid4().hex
        if self.enabled:
            self.record({
                "request_id": request_id, "created_at": time.time(), "surface": surface, "user_id": user_id,
                "experiment_id": assignment.experiment_id if assignment else None,
                "variant": assignment.variant if assignment else None,
                "params": params, "product_ids": [item["product_id"] for item in results],
            })
        answer = {"request_id": request_id}
        if assignment:
            answer["experiment"] = {"id": assignment.experiment_id, "variant": assignment.variant}
        return answer

    def record(self, row: dict) -> None:
        with self._lock:
            if len(self._buffer) >= MAX_BUFFERED:
                self._buffer.pop(next(iter(self._buffer)))
            self._buffer[row["request_id"]] = row
            if self._thread is None:  # started on first use: after gunicorn's fork
                self._thread = threading.Thread(target=self._run, name="impression-log", daemon=True)
                self._thread.start()
                atexit.register(self._write)

    def _run(self) -> None:
        while True:
            time.sleep(self.flush_seconds)
            self._write()

    def _write(self) -> None:
        """Flush (and purge when due); with the database down the rows stay buffered for the next round."""
        try:
            self.flush()
            if self.retention_s and time.time() - self._last_purge > RETENTION_CHECK_SECONDS:
                self.purge()
        except Exception as exc:
            log.warning("impression log not written: %s", exc)

    def flush(self) -> int:
        """Write the buffered impressions (one statement); they stay buffered if the write fails."""
        with self._lock:
            rows = list(self._buffer.values())
        if not rows:
            return 0
        self._tables.ensure()
        statement = _dialect_insert(self.engine)(impressions).on_conflict_do_nothing(index_elements=["request_id"])
        with self.engine.begin() as connection:
            connection.execute(statement, rows)
        with self._lock:
            for row in rows:
                self._buffer.pop(row["request_id"], None)
        return len(rows)

    def purge(self, now: float | None = None) -> int:
        """Delete impressions (and their attributions) older than the retention; returns impressions deleted."""
        self._tables.ensure()
        self._last_purge = now or time.time()
        cutoff = self._last_purge - self.retention_s
        with self.engine.begin() as connection:
            old = select(impressions.c.request_id).where(impressions.c.created_at < cutoff)
            connection.execute(delete(event_attributions).where(event_attributions.c.request_id.in_(old)))
            return connection.execute(delete(impressions).where(impressions.c.created_at < cutoff)).rowcount

    def find(self, request_id: str) -> dict | None:
        with self._lock:
            row = self._buffer.get(request_id)
        if row is not None:
            return row
        self._tables.ensure()
        with self.engine.connect() as connection:
            found = connection.execute(select(impressions).where(impressions.c.request_id == request_id))
            row = found.mappings().first()
        return dict(row) if row else None

    # ---- attribution ----------------------------------------------------------------------------
    def resolve(self, events: Sequence[Event], attributions: Sequence, field) -> list[dict]:
        """The attribution rows of the events that name one, checked against the logged impressions.

        `attributions[i]` is event i's (request_id, position) or None; `field(i, name)` names a field in an
        error. An unknown request id, or a position outside the list shown or holding another product, is an
        AttributionRejected naming the field. An impression written by another worker reaches the database within
        IMPRESSION_FLUSH_SECONDS: a request id not found is looked up once more after that.
        """
        rows, waited = [], False
        for i, (event, attribution) in enumerate(zip(events, attributions)):
            if attribution is None:
                continue
            impression = self.find(attribution.request_id)
            if impression is None and not waited:
                waited = True
                time.sleep(self.flush_seconds + 0.2)
                impression = self.find(attribution.request_id)
            if impression is None:
                raise AttributionRejected("unknown_request_id", f"no logged result list {attribution.request_id!r}",
                                          field(i, "attribution.request_id"))
            shown = impression["product_ids"]
            if not 1 <= attribution.position <= len(shown):
                raise AttributionRejected("position_out_of_range",
                                          f"position must lie between 1 and {len(shown)} for this request",
                                          field(i, "attribution.position"))
            if shown[attribution.position - 1] != event.product_id:
                raise AttributionRejected("position_mismatch",
                                          f"position {attribution.position} of this request shows another product",
                                          field(i, "attribution.position"))
            rows.append({"event_id": event.event_id, "request_id": attribution.request_id,
                         "position": attribution.position, "event_type": event.event_type,
                         "experiment_id": impression["experiment_id"], "variant": impression["variant"]})
        return rows

    def attribute(self, rows: list[dict]) -> None:
        """Store attribution rows (an event id already attributed keeps its first attribution)."""
        if rows:
            self._tables.ensure()
            statement = _dialect_insert(self.engine)(event_attributions)
            with self.engine.begin() as connection:
                connection.execute(statement.on_conflict_do_nothing(index_elements=["event_id"]), rows)
