"""NCF served as the collaborative part of recommendations: loaded from MODELS_DIR, hot-swapped."""


import numpy as np
import pytest
import torch

from app import create_app
from app.core.resources import resources
from app.core.training_data import PRODUCT_ATTRIBUTES, event_interactions, product_attributes
from ncf.mappings import ItemFeatures
from ncf.recommender import NCFRecommender
from ncf.train import TrainConfig
from tests.helpers import ingest_mock_interactions

USERS = [f"ncf-u{n:05d}" for n in range(1, 41)]


def train_and_publish(res, seed: int, stamp: str, item_features: bool = False):
    """NeuMF on the stored events (with the products' attributes from Milvus), saved as the newest model."""
    interactions = event_interactions(res.settings.resolved_database_url, res.settings.event_weights)
    config = TrainConfig(epochs=2, batch_size=256, embed_dim=8, layers=(16, 8), seed=seed, progress=False, threads=1)
    features = None
    if item_features:
        features = ItemFeatures.from_attributes(interactions.item_ids, product_attributes(res.settings),
                                                PRODUCT_ATTRIBUTES)
    model = NCFRecommender(config).fit(interactions, features)
    model.metrics = {"neumf": {}}
    model.save(res.settings.resolved_models_dir / f"ncf-{stamp}-{seed:06x}")
    return model


@pytest.fixture(scope="module")
def served(res, catalog):
    ingest_mock_interactions(res, catalog, len(USERS), 5, "ncf-u")
    res.served_model.check_seconds = 0.0
    first = train_and_publish(res, 1, "20260101T000000Z")
    return first


def recommend(client, user_id, **params):
    response = client.get(f"/users/{user_id}/recommendations", query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def test_hybrid_blends_every_source_with_default_weights(client, served, res):
    learned = recommend(client, USERS[0], limit=100)  # the deployment's blend: the model's blender
    assert learned["blend"] == "learned" and learned["weights"] == {} and served.blender is not None
    assert [item["score"] for item in learned["results"]] == sorted((item["score"] for item in learned["results"]),
                                                                    reverse=True)
    body = recommend(client, USERS[0], limit=100, blend="rank")
    assert body["strategy"] == "hybrid" and body["model"] == res.served_model.version and body["blend"] == "rank"
    weights = body["weights"]
    configured = {source: weight for source, weight in res.settings.recommendation_source_weights.items() if weight}
    assert weights == {source: round(weight / sum(configured.values()), 6) for source, weight in configured.items()}
    for item in body["results"]:  # the weighted sum of the rank scores; a source without an opinion adds 0
        assert abs(item["score"] - sum(weights.get(s, 0.0) * (v or 0.0) for s, v in item["scores"].items())) < 1e-5
        assert item["sources"] and all(item["scores"][source] is not None for source in item["sources"])
    scores = [item["score"] for item in body["results"]]
    assert scores == sorted(scores, reverse=True)
    proposers = {source for item in body["results"] for source in item["sources"]}
    assert {"collaborative", "item", "content", "similar", "popular"} <= proposers


def test_ncf_strategy_ranks_by_the_model(client, served):
    body = recommend(client, USERS[1], strategy="ncf", limit=10)
    assert body["strategy"] == "ncf" and body["weights"] == {"collaborative": 1.0}
    ids = [item["product_id"] for item in body["results"]]
    scores = served.score_ids(USERS[1], ids)
    known = ~np.isnan(scores)
    assert known.sum() >= 5
    assert list(scores[known]) == sorted(scores[known], reverse=True)


def test_a_user_the_model_never_saw_falls_back(client, served, catalog):
    product = next(p for p in catalog if p["active"])
    assert client.post("/events", json={"user_id": "ncf-newcomer", "product_id": product["product_id"],
                                        "event_type": "view"}).status_code == 200
    body = recommend(client, "ncf-newcomer", strategy="ncf")
    assert body["strategy"] == "hybrid" and "collaborative" not in body["weights"]
    assert all(item["scores"]["collaborative"] is None for item in body["results"])
    assert body["blend"] == "rank" and "item" in body["weights"]  # item-to-item from the product viewed
    assert any(item["scores"]["content"] is not None for item in body["results"])  # and the user vector


def test_a_newer_model_is_served_without_restart(client, served, res):
    assert res.served_model.version == "ncf-20260101T000000Z-000001"
    product_ids = [p for p in served.item_ids.ids[:50]]
    before = res.served_model.score_ids(USERS[2], product_ids)
    newer = train_and_publish(res, 2, "20260102T000000Z")
    assert res.served_model.version == "ncf-20260102T000000Z-000002"
    after = res.served_model.score_ids(USERS[2], product_ids)
    assert np.allclose(after, newer.score_ids(USERS[2], product_ids)) and not np.allclose(after, before)


def test_the_app_serving_a_model_sets_the_torch_threads(served, res):
    before = torch.get_num_threads()
    settings = res.settings.model_copy(update={"torch_threads": before + 1})
    try:
        with create_app({"TESTING": True, "SETTINGS": settings}).app_context():
            assert resources().served_model.score_ids(USERS[0], served.item_ids.ids[:10]) is not None
        assert torch.get_num_threads() == settings.torch_threads
    finally:
        torch.set_num_threads(before)


def test_saved_and_loaded_models_score_identically(served, res, tmp_path):
    served.save(tmp_path / "copy")
    loaded = NCFRecommender.load(tmp_path / "copy")
    ids = list(served.item_ids.ids[:100])
    assert np.array_equal(served.score_ids(USERS[3], ids), loaded.score_ids(USERS[3], ids))


def test_personalised_search_reranks_the_hybrid_candidates(client, served, res):
    plain = client.get("/search", query_string={"q": "gift ideas", "limit": 50}).json
    assert "personalized" not in plain
    window = [hit["product_id"] for hit in plain["results"]]
    body = client.get("/search", query_string={"q": "gift ideas", "limit": 10, "user_id": USERS[0]}).json
    assert body["personalized"] == {"user_id": USERS[0],
                                    "weights": {"search": 0.6, "collaborative": 0.3, "popular": 0.1}}
    results = body["results"]
    assert len(results) == 10 and {hit["product_id"] for hit in results} <= set(window)
    assert [hit["score"] for hit in results] == sorted((hit["score"] for hit in results), reverse=True)
    weights = body["personalized"]["weights"]
    for hit in results:
        assert set(hit["scores"]) == {"search", "collaborative", "popular"}
        present = {source: value for source, value in hit["scores"].items() if value is not None}
        expected = sum(weights[s] * v for s, v in present.items()) / sum(weights[s] for s in present)
        assert abs(hit["score"] - expected) < 1e-5
        assert abs(hit["scores"]["search"] - (1 - window.index(hit["product_id"]) / (len(window) - 1))) < 1e-5
    second_page = client.get("/search", query_string={"q": "gift ideas", "limit": 5, "offset": 5,
                                                      "user_id": USERS[0]}).json["results"]
    assert [hit["product_id"] for hit in second_page] == [hit["product_id"] for hit in results[5:10]]


def test_personalised_search_for_a_user_without_a_model_uses_search_and_popularity(client, served):
    body = client.get("/search", query_string={"q": "coffee", "user_id": "ncf-stranger"}).json
    assert body["personalized"]["weights"] == {"search": round(0.6 / 0.7, 6), "popular": round(0.1 / 0.7, 6)}
    assert all(hit["scores"]["collaborative"] is None for hit in body["results"])


def test_a_model_with_item_features_is_served_the_same_way(client, served, res, catalog):
    attributes = product_attributes(res.settings)  # the products collection: category, sub-category, brand
    for product in catalog[:50]:
        assert attributes[product["product_id"]] == [
            f"{field}={product[field]}" for field in PRODUCT_ATTRIBUTES if product[field]]
    featured = train_and_publish(res, 3, "20260103T000000Z", item_features=True)
    assert featured.model.n_attribute_values > 0
    assert featured.item_features.summary()["fields"] == list(PRODUCT_ATTRIBUTES)
    assert res.served_model.version == "ncf-20260103T000000Z-000003"
    ids = list(served.item_ids.ids[:50]) + ["ncf-unseen-product"]
    scores = res.served_model.score_ids(USERS[4], ids)  # loaded from the directory, attribute table included
    assert np.array_equal(scores, featured.score_ids(USERS[4], ids), equal_nan=True) and np.isnan(scores[-1])
    body = recommend(client, USERS[4], strategy="ncf", limit=10)
    assert body["strategy"] == "ncf"
    ranked = featured.score_ids(USERS[4], [item["product_id"] for item in body["results"]])
    known = ~np.isnan(ranked)
    assert known.sum() >= 5 and list(ranked[known]) == sorted(ranked[known], reverse=True)
