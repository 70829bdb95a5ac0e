"""A/B experiments: definitions in SQL, stable assignment of users to variants, and per-variant results.

A user's variant is picked by a hash of (experiment id, user id) mapped to [0, 1) and laid over the
variants' cumulative shares: the same in every worker and after restarts, without any stored assignment.
At most one experiment runs per surface. Results count impressions (lists shown) and, per variant, the
impressions that led to at least one click (an attributed view), add-to-cart or purchase: proportions
with 95% Wilson intervals, each variant tested against the first (the control) by a two-proportion z-test.
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import uuid

from sqlalchemy import JSON, Column, Float, Index, MetaData, String, Table, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.storage.attribution import Assignment, event_attributions, impressions
from app.storage.sql_tables import LazyTables

log = logging.getLogger(__name__)

SURFACES = ("search", "recommendations")
OUTCOMES = {"clicks": "view", "add_to_carts": "add_to_cart", "purchases": "purchase"}
RATE_NAMES = {"clicks": "ctr", "add_to_carts": "add_to_cart_rate", "purchases": "purchase_rate"}
Z_95 = 1.959963984540054
RUNNING_CACHE_SECONDS = 2.0  # how long a process reuses the list of running experiments

metadata = MetaData()

experiments = Table(
    "experiments", metadata,
    Column("experiment_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("surface", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # running | stopped
    Column("variants", JSON, nullable=False),  # [{"name", "share", "params"}]
    Column("created_at", Float, nullable=False),
    Column("stopped_at", Float),
    Index("ix_experiments_status", "status", "surface"),
)


class ExperimentRunning(Exception):
    def __init__(self, experiment_id: str):
        super().__init__(f"experiment {experiment_id} is running on this surface; stop it first")
        self.experiment_id = experiment_id


def bucket(experiment_id: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment, user)."""
    digest = hashlib.sha256(f"{experiment_id}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def assign(experiment: dict, user_id: str) -> Assignment:
    """The variant of `experiment` the user sees."""
    point, cumulative = bucket(experiment["experiment_id"], user_id), 0.0
    for variant in experiment["variants"]:
        cumulative += variant["share"]
        if point < cumulative:
            break
    return Assignment(experiment["experiment_id"], variant["name"], variant["params"])


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> list[float]:
    """95% Wilson score interval of a proportion; [0, 1] without trials."""
    if trials == 0:
        return [0.0, 1.0]
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def two_proportion_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> dict:
    """Difference b - a of two proportions, its 95% interval, and the two-sided p-value of a pooled z-test."""
    if not trials_a or not trials_b:
        return {"difference": None, "difference_ci": None, "z": None, "p_value": None}
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    se = math.sqrt(p_a * (1 - p_a) / trials_a + p_b * (1 - p_b) / trials_b)
    z = (p_b - p_a) / pooled_se if pooled_se else 0.0
    return {"difference": p_b - p_a, "difference_ci": [p_b - p_a - Z_95 * se, p_b - p_a + Z_95 * se],
            "z": z, "p_value": math.erfc(abs(z) / math.sqrt(2))}


class Experiments:
    """Experiments of one database. Their tables are created on first access, and the running experiments are
    kept per process for RUNNING_CACHE_SECONDS, so a search pays no database round trip; while the database
    does not answer, the last list read is used (none before the first read: requests are served outside
    experiments rather than failing)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._tables = LazyTables(metadata, engine)
        self._running: dict[str, dict] = {}
        self._expires = 0.0
        self._refresh = threading.Lock()

    def init_schema(self) -> None:
        self._tables.ensure()

    def create(self, name: str, surface: str, variants: list[dict]) -> dict:
        """Store and start an experiment; ExperimentRunning if one already runs on the surface."""
        row = {"experiment_id": uuid.uuid4().hex, "name": name, "surface": surface, "status": "running",
               "variants": variants, "created_at": time.time(), "stopped_at": None}
        self._tables.ensure()
        with self.engine.connect().execution_options(write=True) as connection, connection.begin():
            if self.engine.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("experiments", 0))))
            running = connection.execute(select(experiments.c.experiment_id).where(
                experiments.c.status == "running", experiments.c.surface == surface)).scalar()
            if running:
                raise ExperimentRunning(running)
            connection.execute(insert(experiments), row)
        self._expires = 0.0
        return row

    def get(self, experiment_id: str) -> dict | None:
        self._tables.ensure()
        with self.engine.connect() as connection:
            row = connection.execute(select(experiments).where(experiments.c.experiment_id == experiment_id))
            found = row.mappings().first()
        return dict(found) if found else None

    def latest(self, limit: int) -> list[dict]:
        """The newest experiments first."""
        self._tables.ensure()
        with self.engine.connect() as connection:
            rows = connection.execute(select(experiments).order_by(experiments.c.created_at.desc()).limit(limit))
            return [dict(row) for row in rows.mappings()]

    def stop(self, experiment_id: str) -> dict | None:
        self._tables.ensure()
        with self.engine.begin() as connection:
            connection.execute(update(experiments).where(
                experiments.c.experiment_id == experiment_id, experiments.c.status == "running",
            ).values(status="stopped", stopped_at=time.time()))
        self._expires = 0.0
        return self.get(experiment_id)

    def assignment(self, surface: str, user_id: str | None) -> Assignment | None:
        """The variant `user_id` sees in the experiment running on `surface`; None without one (or a user)."""
        if user_id is None:
            return None
        experiment = self.running().get(surface)
        return assign(experiment, user_id) if experiment else None

    def running(self) -> dict[str, dict]:
        """surface → running experiment, re-read at most every RUNNING_CACHE_SECONDS."""
        if time.monotonic() >= self._expires:
            with self._refresh:
                if time.monotonic() >= self._expires:  # not re-read by another thread meanwhile
                    self._read_running()
        return self._running

    def _read_running(self) -> None:
        try:
            self._tables.ensure()
            with self.engine.connect() as connection:
                rows = connection.execute(select(experiments).where(experiments.c.status == "running"))
                self._running = {row["surface"]: dict(row) for row in rows.mappings()}
        except SQLAlchemyError as exc:
            log.warning("running experiments not re-read, the last list read is used: %s", exc)
        self._expires = time.monotonic() + RUNNING_CACHE_SECONDS

    def results(self, experiment: dict) -> list[dict]:
        """Per variant: impressions, outcome counts and rates with 95% intervals, and the test against control."""
        experiment_id = experiment["experiment_id"]
        self._tables.ensure()
        with self.engine.connect() as connection:
            shown = dict(connection.execute(
                select(impressions.c.variant, func.count()).where(impressions.c.experiment_id == experiment_id)
                .group_by(impressions.c.variant)).all())
            converted = connection.execute(
                select(event_attributions.c.variant, event_attributions.c.event_type,
                       func.count(event_attributions.c.request_id.distinct()))
                .where(event_attributions.c.experiment_id == experiment_id)
                .group_by(event_attributions.c.variant, event_attributions.c.event_type)).all()
        counts = {(variant, event_type): int(n) for variant, event_type, n in converted}
        rows = []
        for variant in experiment["variants"]:
            trials = int(shown.get(variant["name"], 0))
            row = {"name": variant["name"], "share": variant["share"], "params": variant["params"],
                   "impressions": trials}
            for outcome, event_type in OUTCOMES.items():
                successes = min(counts.get((variant["name"], event_type), 0), trials)
                rate = RATE_NAMES[outcome]
                row[outcome] = successes
                row[rate] = successes / trials if trials else None
                row[f"{rate}_ci"] = wilson_interval(successes, trials)
            rows.append(row)
        control = rows[0]
        for row in rows[1:]:
            row["versus_control"] = {
                RATE_NAMES[outcome]: two_proportion_test(control[outcome], control["impressions"],
                                                         row[outcome], row["impressions"])
                for outcome in OUTCOMES
            }
        return rows
