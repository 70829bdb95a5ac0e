"""Tables created on first use: the lazy store, the retry when another worker created them meanwhile, and the
experiments store's cache of the running experiments (no database round trip per request)."""
from __future__ import annotations

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.exc import OperationalError

from app.storage.events import make_engine
from app.core.experiments import Experiments, metadata as experiment_tables
from app.storage.sql_tables import create_tables

DOWN = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def test_a_table_created_by_another_worker_meanwhile_is_found_on_the_second_try(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'race.db'}")
    experiment_tables.create_all(engine)  # the other worker, between our check and our CREATE
    tries = []

    def create():  # the first try creates without looking (as after a check that found nothing), then looks
        tries.append(1)
        experiment_tables.create_all(engine, checkfirst=len(tries) > 1)

    create_tables(create)
    assert len(tries) == 2


def test_a_database_that_is_down_fails_at_once_without_a_second_try():
    engine, tries = make_engine(DOWN, 2), []

    def create():
        tries.append(1)
        experiment_tables.create_all(engine)

    with pytest.raises(OperationalError):
        create_tables(create)
    assert len(tries) == 1


def test_experiment_tables_are_created_on_first_access_not_when_the_store_is_built(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'lazy.db'}")
    store = Experiments(engine)
    assert not inspect(engine).has_table("experiments")
    assert store.assignment("search", None) is None  # no user: no database access at all
    assert not inspect(engine).has_table("experiments")
    assert store.assignment("search", "u1") is None
    assert inspect(engine).has_table("experiments")


def test_running_experiments_are_read_once_per_cache_period_not_per_request(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'cache.db'}")
    store = Experiments(engine)
    row = store.create("cached", "search", [{"name": "a", "share": 0.5, "params": {}},
                                            {"name": "b", "share": 0.5, "params": {"mode": "dense"}}])
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    variants = {store.assignment("search", f"user-{i}").variant for i in range(200)}
    assert variants == {"a", "b"} and all(store.assignment("search", "u").experiment_id == row["experiment_id"]
                                          for _ in range(3))
    assert len([s for s in statements if "FROM experiments" in s]) == 1


def test_a_database_that_is_down_serves_requests_outside_experiments():
    assert Experiments(make_engine(DOWN, 2)).assignment("search", "u1") is None
