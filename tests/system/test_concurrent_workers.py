"""Concurrent event posts for the same users, spread over two gunicorn workers sharing a Milvus Lite server
and one database, lose no update: every event is counted once and the vectors equal a rebuild."""
from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.config.settings import Settings
from app.core.resources import Resources
from seed.mock_catalog import generate_products
from tests.helpers import assert_vectors_equal_a_rebuild, gunicorn_server, milvus_lite_server, run_module, service_env

USERS = [f"together-{i}" for i in range(3)]
POSTERS, BATCHES_PER_POSTER = 6, 12
EVENT_TYPES = ("view", "add_to_cart", "purchase", "rating")


def post_events(base_url: str, product_ids: list[str], seed: int) -> Counter:
    """Batches of random events for USERS; the number of events posted per user."""
    rng = random.Random(seed)
    posted: Counter = Counter()
    for batch_number in range(BATCHES_PER_POSTER):
        batch = []
        for position in range(rng.randint(1, 10)):
            kind = rng.choice(EVENT_TYPES)
            batch.append({"event_id": f"together-{seed}-{batch_number}-{position}", "user_id": rng.choice(USERS),
                          "product_id": rng.choice(product_ids), "event_type": kind,
                          **({"rating": rng.randint(1, 5)} if kind == "rating" else {})})
        response = requests.post(f"{base_url}/events", json=batch, timeout=120)  # a connection each: both workers
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(batch) and response.json()["user_vectors"] == "updated"
        posted.update(event["user_id"] for event in batch)
    return posted


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_posts_from_two_workers_lose_no_update(tmp_path, request, backend):
    database_url = (request.getfixturevalue("postgres_url") if backend == "postgresql"
                    else f"sqlite:///{tmp_path / 'events.db'}")
    products = list(generate_products(30, seed=9))
    product_ids = [product["product_id"] for product in products]
    with milvus_lite_server(tmp_path, tmp_path / "milvus-lite.log") as (milvus_uri, _):
        env = {"MILVUS_URI": milvus_uri, "DATABASE_URL": database_url}
        init = run_module("app.ops.cli", "init-db", env=service_env(tmp_path, **env))  # before two workers race to it
        assert init.returncode == 0, init.stderr[-2000:]
        access_log = tmp_path / "access.log"
        with gunicorn_server(tmp_path, tmp_path / "gunicorn.log", WEB_CONCURRENCY="2",
                             GUNICORN_ACCESS_LOG=str(access_log),  # the worker's pid, method and path
                             GUNICORN_CMD_ARGS="--access-logformat='%(p)s %(m)s %(U)s'", **env) as base_url:
            assert requests.post(f"{base_url}/products", json=products, timeout=300).status_code == 200
            with ThreadPoolExecutor(POSTERS) as pool:
                posted = sum(pool.map(lambda seed: post_events(base_url, product_ids, seed), range(POSTERS)), Counter())
            totals = {user_id: requests.get(f"{base_url}/users/{user_id}", timeout=60).json()["total_events"]
                      for user_id in USERS}
        assert totals == {user_id: posted[user_id] for user_id in USERS}
        workers = {line.split()[0] for line in access_log.read_text().splitlines() if line.endswith("POST /events")}
        assert len(workers) == 2
        settings = Settings.from_env({}, data_dir=tmp_path, milvus_uri=milvus_uri, database_url=database_url)
        ingestor = Resources(settings).ingestor
        assert {user_id: sum(vector.counts.values()) for user_id, vector in ingestor.users.get(USERS).items()} == totals
        assert_vectors_equal_a_rebuild(ingestor, USERS)
