"""The event log and popularity in SQL (SQLite by default, PostgreSQL supported) through SQLAlchemy.

Events are the source of truth: user vectors in Milvus are derived from them. Each event row records
whether it has been applied to its user's vector, so updates that could not reach Milvus stay pending
and are applied later (an outbox in the event table itself).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from sqlalchemy import (
    Boolean, Column, Float, Index, Integer, MetaData, String, Table, create_engine, func, select, text, update,
)
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from app.config.settings import DATABASE_CONNECT_TIMEOUT

EVENT_TYPES = ("view", "add_to_cart", "purchase", "rating")
# Popularity scores are sums of w * 2^((t - EPOCH) / half-life): additive (one atomic UPDATE per product)
# and ranked the same at any later time. A common factor 2^(-(now - EPOCH) / half-life) turns a sum into
# today's decayed score.
POPULARITY_EPOCH = 1_735_689_600.0  # 2025-01-01T00:00:00Z

metadata = MetaData()

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("user_id", String(64), nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("rating", Float, nullable=True),
    Column("occurred_at", Float, nullable=False),
    Column("vector_applied", Boolean, nullable=False, default=False),
    Index("ix_events_user_time", "user_id", "occurred_at"),
    Index("ix_events_product", "product_id"),
    Index("ix_events_pending", "vector_applied", "user_id"),
)

product_popularity = Table(
    "product_popularity", metadata,
    Column("product_id", String(64), primary_key=True),
    Column("category", String(512), nullable=False, default=""),
    Column("score", Float, nullable=False),
    Column("events", Integer, nullable=False),
    Index("ix_popularity_category_score", "category", "score"),
    Index("ix_popularity_score", "score"),
)

category_popularity = Table(
    "category_popularity", metadata,
    Column("category", String(512), primary_key=True),
    Column("score", Float, nullable=False),
    Column("events", Integer, nullable=False),
)


@dataclass(frozen=True)
class Event:
    event_id: str
    user_id: str
    product_id: str
    event_type: str
    rating: float | None
    occurred_at: float


def make_engine(url: str, connect_timeout: int = DATABASE_CONNECT_TIMEOUT) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout, and BEGIN IMMEDIATE for write transactions.

    A PostgreSQL connection that is not established within `connect_timeout` seconds fails (libpq's
    `connect_timeout`): a server that accepts and never answers is then a 503, not a request hung for minutes.
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                             connect_args={"connect_timeout": connect_timeout})
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sqlalchemy_event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @sqlalchemy_event.listens_for(engine, "begin")
    def _begin(connection: Connection):
        write = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class EventStore:
    """Durable events, per-user reads, and popularity."""

    def __init__(self, engine: Engine, event_weights: dict[str, float], popularity_half_life_days: float):
        self.engine = engine
        self.weights = event_weights
        self.popularity_half_life_s = popularity_half_life_days * 86400.0

    def init_schema(self) -> None:
        metadata.create_all(self.engine)

    @contextmanager
    def write_transaction(self, lock_users: Iterable[str] = ()) -> Iterator[Connection]:
        """A write transaction holding, until it ends, an exclusive lock per user in `lock_users`.

        PostgreSQL: transaction-scoped advisory locks, taken in sorted order (no deadlock).
        SQLite: BEGIN IMMEDIATE, which serialises all writers (across processes too).
        """
        with self.engine.connect().execution_options(write=True) as connection, connection.begin():
            if self.engine.dialect.name == "postgresql":
                for user_id in sorted(set(lock_users)):
                    connection.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(user_id, 0))))
            yield connection

    # ---- writes ---------------------------------------------------------------------------------
    def add(self, connection: Connection, batch: Sequence[Event], categories: dict[str, str]) -> list[Event]:
        """Insert events whose event_id is new; add them to popularity. Returns the events inserted."""
        unique: dict[str, Event] = {}
        for event in batch:
            unique.setdefault(event.event_id, event)  # a repeated id within the batch counts once
        if not unique:
            return []
        rows = [{**event.__dict__, "vector_applied": False} for event in unique.values()]
        insert = _dialect_insert(self.engine)(events).on_conflict_do_nothing(index_elements=["event_id"])
        # executemany with RETURNING: one cached statement, rows sent in batches ("insertmanyvalues")
        inserted_ids = set(connection.execute(insert.returning(events.c.event_id), rows).scalars())
        inserted = [event for event in unique.values() if event.event_id in inserted_ids]
        self._add_popularity(connection, inserted, categories)
        return inserted

    def _add_popularity(self, connection: Connection, inserted: Sequence[Event], categories: dict[str, str]) -> None:
        if not inserted:
            return
        per_product: dict[str, list[float]] = {}
        for event in inserted:
            totals = per_product.setdefault(event.product_id, [0.0, 0])
            totals[0] += self.popularity_increment(event)
            totals[1] += 1
        per_category: dict[str, list[float]] = {}
        for product_id, (score, count) in per_product.items():
            totals = per_category.setdefault(categories.get(product_id, ""), [0.0, 0])
            totals[0] += score
            totals[1] += count
        _increment(connection, product_popularity, "product_id", [
            {"product_id": product_id, "category": categories.get(product_id, ""), "score": score, "events": count}
            for product_id, (score, count) in sorted(per_product.items())
        ])
        _increment(connection, category_popularity, "category", [
            {"category": category, "score": score, "events": count}
            for category, (score, count) in sorted(per_category.items())
        ])

    def popularity_increment(self, event: Event) -> float:
        weight = self.weights[event.event_type]
        if not self.popularity_half_life_s:
            return weight
        return weight * 2.0 ** ((event.occurred_at - POPULARITY_EPOCH) / self.popularity_half_life_s)

    def popularity_now_factor(self, now: float | None = None) -> float:
        """Multiply a stored popularity sum by this to get today's decayed score."""
        if not self.popularity_half_life_s:
            return 1.0
        return 2.0 ** (-((now or time.time()) - POPULARITY_EPOCH) / self.popularity_half_life_s)

    def events_of(
        self, connection: Connection, user_ids: Iterable[str], pending_only: bool = False
    ) -> list[tuple[int, Event]]:
        """(row id, event) of the users' events (or only those not yet in their vectors), in insertion order."""
        query = select(events).where(events.c.user_id.in_(sorted(set(user_ids))))
        if pending_only:
            query = query.where(events.c.vector_applied.is_(False))
        return [(row["id"], _event(row)) for row in connection.execute(query.order_by(events.c.id)).mappings()]

    def mark_applied(self, connection: Connection, row_ids: Sequence[int]) -> None:
        for start in range(0, len(row_ids), 5000):
            connection.execute(
                update(events).where(events.c.id.in_(row_ids[start:start + 5000])).values(vector_applied=True)
            )

    # ---- reads ----------------------------------------------------------------------------------
    def users_with_pending_events(self, limit: int = 1000) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(
                select(events.c.user_id).where(events.c.vector_applied.is_(False)).distinct().limit(limit)
            ).scalars())

    def all_user_ids(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(events.c.user_id).distinct().order_by(events.c.user_id)).scalars())

    def profile(self, user_id: str) -> dict | None:
        """Counts by type, first and last event of a user; None if the user has no events."""
        with self.engine.connect() as connection:
            counts = dict(connection.execute(
                select(events.c.event_type, func.count()).where(events.c.user_id == user_id)
                .group_by(events.c.event_type)
            ).all())
            if not counts:
                return None
            last = connection.execute(
                select(events).where(events.c.user_id == user_id)
                .order_by(events.c.occurred_at.desc(), events.c.id.desc()).limit(1)
            ).mappings().one()
            first_at = connection.execute(
                select(func.min(events.c.occurred_at)).where(events.c.user_id == user_id)
            ).scalar_one()
            pending = connection.execute(
                select(func.count()).where(events.c.user_id == user_id, events.c.vector_applied.is_(False))
            ).scalar_one()
        return {
            "counts": {event_type: int(counts.get(event_type, 0)) for event_type in EVENT_TYPES},
            "total_events": int(sum(counts.values())),
            "first_event_at": first_at,
            "last_event": {k: last[k] for k in ("event_id", "product_id", "event_type", "rating", "occurred_at")},
            "pending_vector_updates": int(pending),
        }

    def recent_users(self, limit: int) -> list[tuple[str, float, int]]:
        """(user_id, last event time, number of events), most recently active first."""
        last_at = func.max(events.c.occurred_at)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(events.c.user_id, last_at, func.count()).group_by(events.c.user_id)
                .order_by(last_at.desc(), events.c.user_id).limit(limit)
            ).all()
        return [(user_id, float(at), int(count)) for user_id, at, count in rows]

    def recent_events(self, user_id: str, limit: int) -> list[Event]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(events).where(events.c.user_id == user_id)
                .order_by(events.c.occurred_at.desc(), events.c.id.desc()).limit(limit)
            ).mappings()
            return [_event(row) for row in rows]

    def products_of(self, user_id: str, event_types: Iterable[str]) -> set[str]:
        """The products the user has events of these types with."""
        event_types = sorted(set(event_types))
        if not event_types:
            return set()
        with self.engine.connect() as connection:
            return set(connection.execute(
                select(events.c.product_id).where(events.c.user_id == user_id, events.c.event_type.in_(event_types))
                .distinct()
            ).scalars())

    def recent_products(self, user_id: str, limit: int) -> list[str]:
        """The user's `limit` most recently touched distinct products, newest first."""
        latest = func.max(events.c.occurred_at)
        with self.engine.connect() as connection:
            return list(connection.execute(
                select(events.c.product_id).where(events.c.user_id == user_id).group_by(events.c.product_id)
                .order_by(latest.desc(), func.max(events.c.id).desc()).limit(limit)
            ).scalars())

    def touched(self, user_id: str) -> list[tuple[str, str, float, int]]:
        """(product_id, event_type, latest time, latest row id) of each product and type the user has events of:
        in one read, what `products_of`, `recent_products` and the user's latest event (a cache key) need."""
        with self.engine.connect() as connection:
            return [(product_id, event_type, float(at), int(row_id)) for product_id, event_type, at, row_id in
                    connection.execute(
                        select(events.c.product_id, events.c.event_type, func.max(events.c.occurred_at),
                               func.max(events.c.id))
                        .where(events.c.user_id == user_id).group_by(events.c.product_id, events.c.event_type))]

    def popular_products(self, limit: int, offset: int = 0, category: str | None = None, all_time: bool = False
                         ) -> list[tuple[str, float]]:
        """(product_id, today's decayed score), most popular first; `all_time`: (product_id, events), most first."""
        column = product_popularity.c.events if all_time else product_popularity.c.score
        query = select(product_popularity.c.product_id, column)
        if category is not None:
            query = query.where(product_popularity.c.category == category)
        query = query.order_by(column.desc(), product_popularity.c.product_id)
        factor = 1.0 if all_time else self.popularity_now_factor()
        with self.engine.connect() as connection:
            rows = connection.execute(query.limit(limit).offset(offset)).all()
        return [(product_id, score * factor) for product_id, score in rows]

    def popularity_of(self, product_ids: Sequence[str], all_time: bool = False) -> dict[str, float]:
        """Today's decayed popularity of the products; `all_time`: their number of events."""
        return self.popularities_of(product_ids)[1 if all_time else 0]

    def popularities_of(self, product_ids: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
        """The products' decayed popularity today and their number of events, in one read."""
        if not product_ids:
            return {}, {}
        factor = self.popularity_now_factor()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(product_popularity.c.product_id, product_popularity.c.score, product_popularity.c.events)
                .where(product_popularity.c.product_id.in_(list(product_ids)))
            ).all()
        return ({product_id: float(score) * factor for product_id, score, _ in rows},
                {product_id: float(count) for product_id, _, count in rows})

    def popular_categories(self, limit: int) -> list[tuple[str, float, int]]:
        factor = self.popularity_now_factor()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(category_popularity).order_by(category_popularity.c.score.desc()).limit(limit)
            ).all()
        return [(row.category, row.score * factor, row.events) for row in rows]

    def count_events(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(events)).scalar_one())

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def _event(row) -> Event:
    return Event(row["event_id"], row["user_id"], row["product_id"], row["event_type"], row["rating"],
                 row["occurred_at"])


def _increment(connection: Connection, table: Table, key: str, rows: list[dict]) -> None:
    """Insert the rows, or add their score and events to the row with the same key (one statement)."""
    statement = _dialect_insert(connection.engine)(table)
    updates = {"score": table.c.score + statement.excluded.score, "events": table.c.events + statement.excluded.events}
    updates.update({column: statement.excluded[column] for column in rows[0] if column not in (key, "score", "events")})
    connection.execute(statement.on_conflict_do_update(index_elements=[key], set_=updates), rows)


def _dialect_insert(engine: Engine):
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def decay_factor(age_seconds: float, half_life_seconds: float) -> float:
    """2^(-age / half-life); 1 when decay is off."""
    return 2.0 ** (-age_seconds / half_life_seconds) if half_life_seconds else 1.0
