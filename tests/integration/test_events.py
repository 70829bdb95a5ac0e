"""POST /events, user profiles and user vectors through the API (SQLite event store, Milvus Lite)."""
import random
import threading

import numpy as np
import pytest

from app.core.user_vectors import accumulate


def active_products(catalog, **where):
    return [p for p in catalog if p["active"] and all(p[k] == v for k, v in where.items())]


def test_events_are_stored_counted_once_and_profiled(client, catalog):
    product = active_products(catalog, sub_category="camera")[0]
    events = [
        {"event_id": "ev-a1", "user_id": "events-alice", "product_id": product["product_id"], "event_type": "view"},
        {"event_id": "ev-a2", "user_id": "events-alice", "product_id": product["product_id"],
         "event_type": "rating", "rating": 4, "timestamp": "2026-01-02T03:04:05Z"},
        {"event_id": "ev-a1", "user_id": "events-alice", "product_id": product["product_id"], "event_type": "view"},
    ]
    body = client.post("/events", json=events).json
    assert body["accepted"] == 2 and body["duplicates"] == 1 and body["user_vectors"] == "updated"
    again = client.post("/events", json=events[0]).json
    assert again["accepted"] == 0 and again["duplicates"] == 1

    profile = client.get("/users/events-alice").json
    assert profile["counts"] == {"view": 1, "add_to_cart": 0, "purchase": 0, "rating": 1}
    assert profile["total_events"] == 2 and profile["has_vector"] is True
    assert profile["last_event"]["event_id"] == "ev-a1"
    assert profile["first_event_at"] == 1767323045.0
    assert [event["event_id"] for event in profile["recent_events"]] == ["ev-a1", "ev-a2"]
    assert client.get("/users/nobody-here").status_code == 404


def test_a_batch_with_one_bad_event_is_rejected_whole(client, catalog):
    product = active_products(catalog)[0]["product_id"]
    good = {"user_id": "events-bob", "product_id": product, "event_type": "purchase"}
    response = client.post("/events", json=[good, {**good, "product_id": "no-such-product"}])
    assert response.status_code == 422
    assert response.json["error"] == {"code": "unknown_product", "field": "1.product_id",
                                      "message": "no product 'no-such-product' in the catalogue"}
    assert client.get("/users/events-bob").status_code == 404


@pytest.mark.parametrize(
    "event, field",
    [
        ({"event_type": "rating"}, "0.rating"),
        ({"event_type": "view", "rating": 3}, "0.rating"),
        ({"event_type": "rating", "rating": 6}, "0.rating"),
        ({"event_type": "click"}, "0.event_type"),
        ({"event_type": "view", "user_id": "bad user"}, "0.user_id"),
        ({"event_type": "view", "timestamp": "yesterday"}, "0.timestamp"),
        ({"event_type": "view", "timestamp": "2099-01-01T00:00:00Z"}, "0.timestamp"),
        ({"event_type": "view", "extra": 1}, "0.extra"),
    ],
)
def test_bad_events_are_422_naming_the_field(client, catalog, event, field):
    base = {"user_id": "events-carol", "product_id": active_products(catalog)[0]["product_id"]}
    response = client.post("/events", json=[{**base, **event}])
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field


def test_too_many_events_is_413(client):
    response = client.post("/events", json=[{"user_id": "u", "product_id": "p", "event_type": "view"}] * 1001)
    assert response.status_code == 413


def test_incremental_vectors_equal_a_rebuild_after_concurrent_posts(client, res, catalog):
    rng = random.Random(7)
    products = [p["product_id"] for p in active_products(catalog)[:200]]
    users = [f"events-stream-{i}" for i in range(4)]
    kinds = ["view", "add_to_cart", "purchase", "rating"]

    def post_stream(worker: int) -> None:
        local = random.Random(worker)
        for _ in range(8):
            batch = []
            for _ in range(local.randint(1, 12)):
                kind = local.choice(kinds)
                batch.append({"user_id": local.choice(users), "product_id": local.choice(products), "event_type": kind,
                              **({"rating": local.randint(1, 5)} if kind == "rating" else {})})
            assert client.post("/events", json=batch).status_code == 200

    threads = [threading.Thread(target=post_stream, args=(rng.randint(0, 10**6),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    incremental = res.users.get(users)
    with res.events.engine.connect() as connection:
        history = res.events.events_of(connection, users)
    touched = res.products.get({e.product_id for _, e in history}, fields=("product_id", "dense"))
    vectors = {pid: product["dense"] for pid, product in touched.items()}
    for user_id in users:
        rows = [(row_id, event) for row_id, event in history if event.user_id == user_id]
        expected = accumulate(None, user_id, rows, vectors, res.settings.event_weights, 0.0, res.users.dimension)
        assert incremental[user_id].counts == expected.counts
        assert sum(expected.counts.values()) == client.get(f"/users/{user_id}").json["total_events"]
        assert np.allclose(incremental[user_id].vector, expected.vector, rtol=1e-4, atol=1e-5)

    assert res.ingestor.rebuild(users) == len(users)
    rebuilt = res.users.get(users)
    for user_id in users:
        assert np.allclose(rebuilt[user_id].vector, incremental[user_id].vector, rtol=1e-4, atol=1e-5)
