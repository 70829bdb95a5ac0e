"""POST /train {"model": "ranker"}: refused until enough searches led to an event, then trained in the
background on the logged feedback, versioned and hot-swapped into search."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from app import create_app
from app.core.catalog import Product
from app.core.indexing import index_products
from app.core.resources import resources
from app.config.settings import Settings
from seed.mock_catalog import generate_products
from seed.shoppers import Shopper, shopper_queries
from tests.integration.test_training_api import wait_until_finished

API_KEY = "test-api-key-ranker"
KEY_HEADER = {"X-API-Key": API_KEY}
MIN_LISTS = 30


@pytest.fixture(scope="module")
def ranker_app(tmp_path_factory):
    settings = Settings.from_env({}, data_dir=tmp_path_factory.mktemp("ranker"), api_key=API_KEY,
                                 model_check_seconds=0.0, ranker_min_feedback_lists=MIN_LISTS)
    app = create_app({"TESTING": True, "SETTINGS": settings})
    catalog = list(generate_products(300, seed=42))
    with app.app_context():
        res = resources()
        index_products((Product.model_validate(record) for record in catalog), res.products, res.encoder)
        res.products.flush()
    app.config["QUERIES"] = shopper_queries(catalog)
    return app


@pytest.fixture(scope="module")
def client(ranker_app):
    return ranker_app.test_client()


def shop(client, queries: list[str], searches: int, seed: int) -> int:
    """Simulated shoppers search and act; the number of lists that led to an event."""
    rng, acted = random.Random(seed), 0
    for number in range(searches):
        shopper, query = Shopper(f"rt-{seed}-{number}", rng), rng.choice(queries)
        page = client.get("/search", query_string={"q": query, "user_id": shopper.user_id}).get_json()
        events = shopper.act(query, page["results"], page["request_id"])
        if events:
            acted += 1
            assert client.post("/events", json=events).status_code == 200
    return acted


def jobs_stored(client) -> int:
    return len(client.get("/train").get_json()["jobs"])


@pytest.mark.parametrize("body, status, code, field", [
    ({"model": "ranker", "epochs": 3}, 422, "not_a_ranker_parameter", "epochs"),
    ({"model": "ranker", "layers": [8]}, 422, "not_a_ranker_parameter", "layers"),
    ({"model": "ranker"}, 409, "not_enough_feedback", "model"),  # no search has led to an event yet
    ({"model": "ranker", "seed": "1"}, 422, "invalid_field", "seed"),
])
def test_bad_ranker_requests_are_refused_naming_the_field_and_start_nothing(client, body, status, code, field):
    before = jobs_stored(client)
    answer = client.post("/train", json=body, headers=KEY_HEADER)
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["code"] == code and answer.get_json()["error"]["field"] == field
    assert jobs_stored(client) == before


def test_ranker_trains_in_the_background_once_enough_feedback_exists_and_is_hot_swapped(client, ranker_app):
    queries = ranker_app.config["QUERIES"][:6]
    assert shop(client, queries, 20, seed=1) < MIN_LISTS
    with ranker_app.app_context():
        resources().impressions.flush()
    refused = client.post("/train", json={"model": "ranker"}, headers=KEY_HEADER)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "not_enough_feedback"

    shop(client, queries, 60, seed=2)
    with ranker_app.app_context():
        resources().impressions.flush()
    before = client.get("/search", query_string={"q": queries[0], "ranker": "true"}).get_json()["results"]
    started = client.post("/train", json={"model": "ranker", "seed": 3}, headers=KEY_HEADER)
    assert started.status_code == 202, started.get_json()
    job = wait_until_finished(lambda job_id: client.get(f"/train/{job_id}").get_json(), started.get_json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["params"] == {"model": "ranker", "seed": 3}
    assert job["metrics"]["training_lists"] >= 1 and job["metrics"]["lists"] >= 80
    model_dir = Path(job["model_dir"])
    settings = ranker_app.config["SETTINGS"]
    assert model_dir.parent == settings.resolved_models_dir / "ranker" and (model_dir / "metrics.json").is_file()

    after = client.get("/search", query_string={"q": queries[0], "ranker": "true"}).get_json()["results"]
    assert [hit["score"] for hit in after] != [hit["score"] for hit in before]  # the ranker's scores, not fused ones
    with ranker_app.app_context():
        assert resources().ranker.ranker is not None  # the served version is the new one

    personal = client.get("/search", query_string={"q": queries[0], "ranker": "true", "user_id": "rt-new"}).get_json()
    assert "popular" not in personal["personalized"]["weights"]  # the ranker already weighs popularity
    plain = client.get("/search", query_string={"q": queries[0], "user_id": "rt-new"}).get_json()
    assert "popular" in plain["personalized"]["weights"]
