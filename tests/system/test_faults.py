"""Faults: Milvus stopped or hung, the database unreachable or read-only. No acknowledged event is lost, the
vector updates Milvus missed are applied once it is back, calls fail fast with a 503 naming the dependency,
and /health says what is down."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from app import create_app
from app.config.settings import Settings
from app.core.catalog import Product
from app.core.indexing import index_products
from app.core.resources import resources
from app.storage.events import EventStore, make_engine
from seed.mock_catalog import generate_products
from tests.helpers import (
    assert_vectors_equal_a_rebuild, eventually, free_port, milvus_lite_server, restart_milvus_lite_server, stop_process,
)

MILVUS_TIMEOUT = 3.0
RECOVERY_SECONDS = 30  # the fail-fast window and the retry interval are 5 s each
EVENT_TYPES = ("view", "add_to_cart", "purchase", "rating")


class MilvusLiteServer:
    """The module's Milvus Lite server, which the tests stop, freeze and start again."""

    def __init__(self, uri: str, data_dir: Path, log: Path, process: subprocess.Popen):
        self.uri, self.data_dir, self.log, self.process = uri, data_dir, log, process

    def stop(self) -> None:
        stop_process(self.process)

    def start(self) -> None:
        self.process = restart_milvus_lite_server(self.uri, self.data_dir, self.log)

    @contextmanager
    def frozen(self):
        """Milvus stopped with SIGSTOP: connections are accepted, calls never answered."""
        children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        (milvus_pid,) = map(int, children.stdout.split())
        os.kill(milvus_pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(milvus_pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("faults")
    log = data_dir / "milvus-lite.log"
    with milvus_lite_server(data_dir, log) as (uri, process):
        server = MilvusLiteServer(uri, data_dir, log, process)
        yield server
        server.stop()


def make_app(data_dir: Path, milvus_uri: str, **settings):
    return create_app({"TESTING": True, "SETTINGS": Settings.from_env(
        {}, data_dir=data_dir, milvus_uri=milvus_uri, milvus_timeout=MILVUS_TIMEOUT, **settings)})


@pytest.fixture(scope="module")
def service(milvus):
    """An app over the module's server (SQLite events) with 60 products: (test client, resources, product ids)."""
    app = make_app(milvus.data_dir, milvus.uri)
    with app.app_context():
        res = resources()
        products = [Product.model_validate(record) for record in generate_products(60, seed=5)]
        index_products(products, res.products, res.encoder)
        res.products.flush()
        yield app.test_client(), res, [product.product_id for product in products]


def random_event(rng: random.Random, user_ids: list[str], product_ids: list[str]) -> dict:
    kind = rng.choice(EVENT_TYPES)
    return {"user_id": rng.choice(user_ids), "product_id": rng.choice(product_ids), "event_type": kind,
            **({"rating": rng.randint(1, 5)} if kind == "rating" else {})}


def healthy(client) -> bool:
    return client.get("/health").status_code == 200


def no_update_pending(res) -> bool:
    return not res.events.users_with_pending_events(limit=1)


def assert_store_unavailable_at_once(client, path: str) -> None:
    started = time.monotonic()
    response = client.get(path)
    assert response.status_code == 503, (path, response.json)
    assert response.json["error"]["code"] == "store_unavailable" and response.headers["Retry-After"]
    assert time.monotonic() - started < MILVUS_TIMEOUT / 2, path  # no call waited for its timeout


def test_events_posted_while_milvus_is_down_are_kept_and_applied_when_it_is_back(milvus, service):
    client, res, product_ids = service
    users = [f"outage-{i}" for i in range(4)]
    seen, never_seen = product_ids[:20], product_ids[20:]
    warm_up = [{"user_id": users[i % len(users)], "product_id": product_id, "event_type": "view"}
               for i, product_id in enumerate(seen)]  # products known from events can be taken while Milvus is down
    assert client.post("/events", json=warm_up).json["user_vectors"] == "updated"
    posted = Counter(event["user_id"] for event in warm_up)
    answers: list[str] = []
    stop_posting = threading.Event()

    def post_stream() -> None:
        rng = random.Random(3)
        while not stop_posting.is_set():
            batch = [random_event(rng, users, seen) for _ in range(rng.randint(1, 8))]
            response = client.post("/events", json=batch)
            assert response.status_code == 200, response.json
            assert response.json["accepted"] == len(batch)
            posted.update(event["user_id"] for event in batch)
            answers.append(response.json["user_vectors"])
            time.sleep(0.05)

    with ThreadPoolExecutor(1) as pool:
        streaming = pool.submit(post_stream)
        try:
            eventually(lambda: answers.count("updated") >= 5, 60)
            milvus.stop()
            eventually(lambda: answers.count("pending") >= 10, 60)
            health = client.get("/health")
            assert health.status_code == 503 and health.json == {"status": "degraded", "failing": ["milvus"]}
            for path in ("/search?q=running+shoes", f"/products/{seen[0]}", f"/users/{users[0]}/recommendations"):
                assert_store_unavailable_at_once(client, path)
            stored = res.events.count_events()
            unseen_event = {"user_id": users[0], "product_id": never_seen[0], "event_type": "view"}
            refused = client.post("/events", json=unseen_event)
            assert refused.status_code == 503 and refused.json["error"]["code"] == "store_unavailable"
            assert res.events.count_events() == stored  # a refused batch stores nothing
            milvus.start()
            eventually(lambda: healthy(client), RECOVERY_SECONDS)
            updated_before = answers.count("updated")
            eventually(lambda: answers.count("updated") >= updated_before + 5, 60)
        finally:
            stop_posting.set()
            streaming.result()  # raises what failed in the stream, if anything
    eventually(lambda: no_update_pending(res), RECOVERY_SECONDS)
    for user_id in users:
        profile = client.get(f"/users/{user_id}").json
        assert profile["total_events"] == posted[user_id] and profile["pending_vector_updates"] == 0
    assert_vectors_equal_a_rebuild(res.ingestor, users)


def test_pending_updates_are_applied_without_a_new_event(milvus, service):
    client, res, product_ids = service
    user_id = "outage-quiet"
    event = {"user_id": user_id, "product_id": product_ids[30], "event_type": "purchase"}
    assert client.post("/events", json={**event, "event_id": "quiet-1"}).json["user_vectors"] == "updated"
    milvus.stop()
    assert client.post("/events", json={**event, "event_id": "quiet-2"}).json["user_vectors"] == "pending"
    milvus.start()
    eventually(lambda: no_update_pending(res), RECOVERY_SECONDS)  # the retry thread, no further event
    assert res.users.get([user_id])[user_id].counts["purchase"] == 2
    assert_vectors_equal_a_rebuild(res.ingestor, [user_id])


def test_a_hung_milvus_costs_one_timeout_then_calls_fail_fast(milvus, service):
    client, res, product_ids = service
    eventually(lambda: healthy(client), RECOVERY_SECONDS)
    event = {"user_id": "hung-1", "product_id": product_ids[40], "event_type": "view"}
    assert client.post("/events", json=event).json["user_vectors"] == "updated"
    with milvus.frozen():
        started = time.monotonic()
        first = client.get("/search?q=desk+lamp")
        assert first.status_code == 503 and first.json["error"]["code"] == "store_unavailable"
        assert MILVUS_TIMEOUT <= time.monotonic() - started < MILVUS_TIMEOUT + 3
        assert_store_unavailable_at_once(client, "/search?q=desk+lamp")
        assert client.get("/health").json == {"status": "degraded", "failing": ["milvus"]}
        assert client.post("/events", json=event).json["user_vectors"] == "pending"
    eventually(lambda: healthy(client), RECOVERY_SECONDS)
    eventually(lambda: no_update_pending(res), RECOVERY_SECONDS)
    assert res.users.get(["hung-1"])["hung-1"].counts["view"] == 2
    assert_vectors_equal_a_rebuild(res.ingestor, ["hung-1"])


def read_only_sqlite(tmp_path: Path) -> str:
    """An existing SQLite event store opened read-only (file permissions would not stop root)."""
    path = tmp_path / "events.db"
    EventStore(make_engine(f"sqlite:///{path}"), Settings.from_env({}).event_weights, 7.0).init_schema()
    return f"sqlite:///file:{path}?mode=ro&uri=true"


@pytest.mark.parametrize("database_url, health", [
    pytest.param(lambda tmp_path: f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/events",
                 {"status": "degraded", "failing": ["database"]}, id="postgresql-refused"),
    pytest.param(read_only_sqlite, {"status": "ok"}, id="sqlite-read-only"),  # it answers reads
])
def test_a_database_that_cannot_store_events_is_503_database_unavailable(milvus, service, tmp_path, database_url,
                                                                         health):
    _, _, product_ids = service
    client = make_app(tmp_path, milvus.uri, database_url=database_url(tmp_path)).test_client()
    response = client.post("/events", json={"user_id": "no-db", "product_id": product_ids[0], "event_type": "view"})
    assert response.status_code == 503, response.json
    assert response.json["error"] == {"code": "database_unavailable",
                                      "message": "the event database is unavailable; retry later"}
    assert client.get("/health").json == health
    assert client.get("/search?q=lamp").status_code == 200  # what needs only Milvus still works


def test_a_database_server_that_never_answers_is_503_after_the_connect_timeout(milvus, service, tmp_path):
    """A PostgreSQL port that accepts connections and never speaks: without a connect timeout the request
    would wait forever; with DATABASE_CONNECT_TIMEOUT it is a 503 naming the database."""
    _, _, product_ids = service
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel completes handshakes; nothing answers
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/events"
        client = make_app(tmp_path, milvus.uri, database_url=url, database_connect_timeout=2).test_client()
        answers = []
        request = threading.Thread(target=lambda: answers.append(client.post(
            "/events", json={"user_id": "silent-db", "product_id": product_ids[0], "event_type": "view"})), daemon=True)
        request.start()
        request.join(60)
        assert answers, "the request still waits for the database"
        assert answers[0].status_code == 503 and answers[0].json["error"]["code"] == "database_unavailable"
        assert client.get("/health").json == {"status": "degraded", "failing": ["database"]}
