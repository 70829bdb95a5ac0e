"""Experiments through the API: definition, assignment served on search and recommendations, results, stop."""
from __future__ import annotations

import pytest

from app.core.experiments import Experiments, assign
from app.storage.events import make_engine

SEARCH_EXPERIMENT = {"name": "fusion test", "surface": "search", "variants": [
    {"name": "control", "share": 0.5, "params": {"fusion": "rrf"}},
    {"name": "weighted", "share": 0.5, "params": {"fusion": "weighted", "dense_weight": 0.9}},
]}


@pytest.fixture
def started(client):
    """Start experiments through the API; every one is stopped afterwards (the app is shared by the session)."""
    ids = []

    def start(definition: dict) -> dict:
        answer = client.post("/experiments", json=definition)
        assert answer.status_code == 201, answer.get_json()
        ids.append(answer.get_json()["experiment_id"])
        return answer.get_json()

    yield start
    for experiment_id in ids:
        client.post(f"/experiments/{experiment_id}/stop")


def users_in(experiment: dict, variant: str, count: int) -> list[str]:
    row = {"experiment_id": experiment["experiment_id"], "variants": experiment["variants"]}
    return [u for u in (f"exp-user-{i}" for i in range(200)) if assign(row, u).variant == variant][:count]


def test_search_experiment_serves_each_user_a_stable_variant_with_its_params(client, started):
    experiment = started(SEARCH_EXPERIMENT)
    assert experiment["status"] == "running" and len(experiment["experiment_id"]) == 32
    for variant, fusion in (("control", "rrf"), ("weighted", "weighted")):
        for user_id in users_in(experiment, variant, 3):
            for _ in range(2):
                answer = client.get("/search", query_string={"q": "yoga mat", "user_id": user_id}).get_json()
                assert answer["experiment"] == {"id": experiment["experiment_id"], "variant": variant}
                assert answer["fusion"] == fusion
    anonymous = client.get("/search", query_string={"q": "yoga mat"}).get_json()
    assert "experiment" not in anonymous


def test_results_count_impressions_and_attributed_outcomes_per_variant(client, started):
    experiment = started(SEARCH_EXPERIMENT)
    buyer = users_in(experiment, "weighted", 1)[0]
    for user_id in users_in(experiment, "control", 2) + [buyer]:
        client.get("/search", query_string={"q": "backpack", "user_id": user_id, "limit": 5})
    shown = client.get("/search", query_string={"q": "backpack", "user_id": buyer, "limit": 5}).get_json()
    attribution = {"request_id": shown["request_id"], "position": 3}
    product_id = shown["results"][2]["product_id"]
    events = [{"user_id": buyer, "product_id": product_id, "event_type": kind, "attribution": attribution}
              for kind in ("view", "add_to_cart", "purchase", "view")]
    assert client.post("/events", json=events).status_code == 200
    results = client.get(f"/experiments/{experiment['experiment_id']}/results").get_json()
    control, weighted = results["variants"]
    assert (control["name"], control["impressions"], control["clicks"], control["purchases"]) == ("control", 2, 0, 0)
    assert (weighted["impressions"], weighted["clicks"], weighted["add_to_carts"], weighted["purchases"]) == (2, 1, 1, 1)
    assert weighted["ctr"] == 0.5 and weighted["ctr_ci"][0] < 0.5 < weighted["ctr_ci"][1]
    assert control["ctr_ci"][0] == pytest.approx(0, abs=1e-12) and "versus_control" not in control
    assert 0 < weighted["versus_control"]["purchase_rate"]["p_value"] < 1


def test_recommendation_experiment_applies_strategy_and_stop_ends_it(client, started):
    experiment = started({"name": "popular vs hybrid", "surface": "recommendations", "variants": [
        {"name": "control", "share": 0.4, "params": {}},
        {"name": "popular", "share": 0.6, "params": {"strategy": "popular", "exclude_purchased": False}},
    ]})
    user_id = users_in(experiment, "popular", 1)[0]
    answer = client.get(f"/users/{user_id}/recommendations").get_json()
    assert answer["experiment"]["variant"] == "popular" and answer["requested_strategy"] == "popular"
    stopped = client.post(f"/experiments/{experiment['experiment_id']}/stop")
    assert stopped.status_code == 200 and stopped.get_json()["status"] == "stopped"
    assert "experiment" not in client.get(f"/users/{user_id}/recommendations").get_json()
    assert client.get(f"/experiments/{experiment['experiment_id']}").get_json()["status"] == "stopped"


def test_a_second_experiment_on_a_running_surface_is_a_conflict(client, started):
    started(SEARCH_EXPERIMENT)
    answer = client.post("/experiments", json=SEARCH_EXPERIMENT)
    assert answer.status_code == 409 and answer.get_json()["error"]["field"] == "surface"


def variant(name="b", share=0.5, **params):
    return {"name": name, "share": share, "params": params}


@pytest.mark.parametrize("definition, status, field", [
    ({"surface": "search", "variants": [variant("a"), variant()]}, 422, "name"),
    ({"name": "x", "surface": "checkout", "variants": [variant("a"), variant()]}, 422, "surface"),
    ({"name": "x", "surface": "search", "variants": []}, 422, "variants"),
    ({"name": "x", "surface": "search", "variants": [variant("a", 0.7), variant(share=0.5)]}, 422, "variants"),
    ({"name": "x", "surface": "search", "variants": [variant("a", 0.5), variant(share=0.4)]}, 422, "variants"),
    ({"name": "x", "surface": "search", "variants": [variant("a", 1.0), variant(share=0)]}, 422, "variants.1.share"),
    ({"name": "x", "surface": "search", "variants": [variant("a"), variant("a")]}, 422, "variants.1.name"),
    ({"name": "x", "surface": "search", "variants": [variant("a"), variant(colour="red")]}, 400,
     "variants.1.params.colour"),
    ({"name": "x", "surface": "search", "variants": [variant("a"), variant(strategy="ncf")]}, 400,
     "variants.1.params.strategy"),
    ({"name": "x", "surface": "search", "variants": [variant("a"), variant(fusion="max")]}, 422,
     "variants.1.params.fusion"),
    ({"name": "x", "surface": "recommendations", "variants": [variant("a"), variant(weights="content:-1")]}, 422,
     "variants.1.params.weights"),
])
def test_bad_definitions_are_refused_naming_the_field_and_nothing_is_stored(client, res, definition, status, field):
    with res.events.engine.connect() as connection:
        before = connection.exec_driver_sql("SELECT count(*) FROM experiments").scalar_one()
    answer = client.post("/experiments", json=definition)
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["field"] == field
    with res.events.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM experiments").scalar_one() == before


def test_unknown_experiment_is_a_404(client):
    assert client.get(f"/experiments/{'0' * 32}/results").status_code == 404
    assert client.post(f"/experiments/{'0' * 32}/stop").status_code == 404


def test_experiments_are_stored_in_postgresql(postgres_url):
    engine = make_engine(postgres_url)
    store = Experiments(engine)
    store.init_schema()
    row = store.create("pg", "search", [{"name": "a", "share": 0.5, "params": {}},
                                        {"name": "b", "share": 0.5, "params": {"mode": "dense"}}])
    assignment = store.assignment("search", "u1")
    assert assignment.experiment_id == row["experiment_id"]
    assert assignment == Experiments(engine).assignment("search", "u1")  # another worker: the same variant
    assert store.stop(row["experiment_id"])["status"] == "stopped"
    assert store.assignment("search", "u1") is None
    engine.dispose()


def test_ranker_variant_without_a_trained_model_serves_the_hybrid_order(client, started):
    experiment = started({"name": "ranker", "surface": "search", "variants": [
        {"name": "control", "share": 0.5, "params": {"fusion": "rrf"}}, {"name": "ranker", "share": 0.5, "params": {"ranker": True}}]})
    user_id = users_in(experiment, "ranker", 1)[0]  # a user without events: no collaborative score
    served = client.get("/search", query_string={"q": "garden hose", "user_id": user_id}).get_json()
    assert served["experiment"]["variant"] == "ranker"
    assert served["personalized"]["weights"] == {"search": 1.0}  # the ranker's order, popularity not blended again
    hybrid = client.get("/search", query_string={"q": "garden hose"}).get_json()
    assert [item["product_id"] for item in served["results"]] == [item["product_id"] for item in hybrid["results"]]


def test_latest_experiments_are_listed_newest_first(client, started):
    first = started(SEARCH_EXPERIMENT)
    client.post(f"/experiments/{first['experiment_id']}/stop")
    second = started({**SEARCH_EXPERIMENT, "name": "second"})
    listed = client.get("/experiments").get_json()["experiments"]
    assert [row["experiment_id"] for row in listed[:2]] == [second["experiment_id"], first["experiment_id"]]
    assert [row["status"] for row in listed[:2]] == ["running", "stopped"]
