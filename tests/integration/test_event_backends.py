"""The same event stream through SQLite and PostgreSQL gives the same profiles, popularity, vectors and
recommendations (PostgreSQL: the real server on loopback)."""
import random
import threading

import numpy as np
import pytest

from app.core.ingest import EventIngestor
from app.core.recommend import Recommender
from app.storage.events import Event, EventStore, make_engine
from app.storage.users import UserVectorStore

USERS = [f"backend-user-{i}" for i in range(6)]


def build_stack(res, database_url: str, collection: str):
    events = EventStore(make_engine(database_url), res.settings.event_weights, res.settings.popularity_half_life_days)
    events.init_schema()
    users = UserVectorStore(res.client, collection, res.users.dimension)
    users.ensure_collection()
    ingestor = EventIngestor(events, res.products, users, res.settings.event_weights, 0.0)
    return events, users, ingestor, Recommender(res.products, users, events, 60)


def event_stream(catalog) -> list[list[Event]]:
    rng = random.Random(11)
    products = [p["product_id"] for p in catalog if p["active"]][:300]
    kinds = ["view"] * 6 + ["add_to_cart"] * 2 + ["purchase", "rating"]
    batches = []
    for b in range(30):
        batch = []
        for i in range(rng.randint(1, 20)):
            kind = rng.choice(kinds)
            batch.append(Event(f"bk-{b}-{i}", rng.choice(USERS), rng.choice(products), kind,
                               float(rng.randint(1, 5)) if kind == "rating" else None,
                               1_790_000_000 + rng.uniform(0, 30 * 86400)))
        batches.append(batch)
    batches.append(batches[3][:5])  # repeated event ids: not counted twice
    return batches


def ingest_concurrently(ingestor, batches) -> None:
    chunks = [batches[i::3] for i in range(3)]
    errors = []

    def work(chunk):
        try:
            for batch in chunk:
                ingestor.ingest(batch)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


@pytest.fixture(scope="module")
def stacks(res, catalog, postgres_url, tmp_path_factory):
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('backend') / 'events.db'}"
    built = {"sqlite": build_stack(res, sqlite_url, "users_backend_sqlite"),
             "postgresql": build_stack(res, postgres_url, "users_backend_pg")}
    batches = event_stream(catalog)
    for _, _, ingestor, _ in built.values():
        ingest_concurrently(ingestor, batches)
    yield built
    for events, _, _, _ in built.values():
        events.engine.dispose()
    for name in ("users_backend_sqlite", "users_backend_pg"):
        res.client.drop_collection(name)


def test_both_backends_store_the_same_events(stacks):
    sqlite_events, postgres_events = stacks["sqlite"][0], stacks["postgresql"][0]
    assert postgres_events.engine.dialect.name == "postgresql"
    assert sqlite_events.count_events() == postgres_events.count_events() > 100
    for user_id in USERS:
        assert sqlite_events.profile(user_id) == postgres_events.profile(user_id)
        assert sqlite_events.profile(user_id)["pending_vector_updates"] == 0


def test_both_backends_rank_popularity_the_same(stacks):
    sqlite_popular = stacks["sqlite"][0].popular_products(50)
    postgres_popular = stacks["postgresql"][0].popular_products(50)
    assert [pid for pid, _ in sqlite_popular] == [pid for pid, _ in postgres_popular]
    assert np.allclose([s for _, s in sqlite_popular], [s for _, s in postgres_popular], rtol=1e-9)
    assert [c for c, _, _ in stacks["sqlite"][0].popular_categories(10)] == \
        [c for c, _, _ in stacks["postgresql"][0].popular_categories(10)]


def test_both_backends_give_the_same_vectors_and_recommendations(stacks):
    sqlite_users, postgres_users = stacks["sqlite"][1].get(USERS), stacks["postgresql"][1].get(USERS)
    assert set(sqlite_users) == set(postgres_users) == set(USERS)
    for user_id in USERS:
        assert sqlite_users[user_id].counts == postgres_users[user_id].counts
        assert np.allclose(sqlite_users[user_id].vector, postgres_users[user_id].vector, rtol=1e-4, atol=1e-5)
        for strategy in ("hybrid", "content", "popular"):
            ours = stacks["sqlite"][3].recommend(user_id, strategy, 10)
            theirs = stacks["postgresql"][3].recommend(user_id, strategy, 10)
            assert [i.product["product_id"] for i in ours.items] == [i.product["product_id"] for i in theirs.items]


def test_rebuild_matches_incremental_on_postgresql(stacks):
    _, users, ingestor, _ = stacks["postgresql"]
    before = users.get(USERS)
    assert ingestor.rebuild(USERS) == len(USERS)
    after = users.get(USERS)
    for user_id in USERS:
        assert np.allclose(before[user_id].vector, after[user_id].vector, rtol=1e-4, atol=1e-5)
