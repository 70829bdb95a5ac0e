"""The leave-last-out replay through the served Recommender (`python -m app.ops.cli evaluate-recommendations`)."""
import json

import pytest

from app.core.evaluation import K, RECALL_K, UNION, evaluate, load_events, markdown, replay, sample_users
from app.core.recommend import SOURCES, STRATEGIES
from app.storage.events import EVENT_TYPES
from ncf.evaluate import list_metrics
from ncf.train import TrainConfig
from tests.helpers import ingest_mock_interactions

CONFIG = TrainConfig(epochs=2, batch_size=256, embed_dim=8, layers=(16, 8), progress=False, threads=1,
                     item_features=False)


@pytest.fixture(scope="module")
def replayed(res, catalog, tmp_path_factory):
    ingest_mock_interactions(res, catalog, 40, 21, "eval-u", 12, 25)
    return replay(res, load_events(res, None), "validation", tmp_path_factory.mktemp("evaluation"), CONFIG,
                  {"kind": "events"})


def test_the_replay_holds_out_the_validation_and_test_items(res, replayed):
    held = {(user, product) for user, product in replayed.held_out.items()}
    assert held and all(user in replayed.touched for user, _ in held)
    stored = {(user, product) for user, products in replayed.touched.items() for product in products}
    assert not held & stored
    everything = load_events(res, None)
    assert replayed.recommender.events.count_events() < len(everything)  # the test items are held out too
    assert replayed.model.user_ids.ids == sorted(replayed.touched)
    for user, product in list(held)[:10]:  # the held-out item is not in the user's history of the replay
        assert product not in replayed.recommender.events.products_of(user, EVENT_TYPES)


def test_every_strategy_is_measured_through_the_recommender_without_consumed_items(replayed, tmp_path):
    users = sample_users(replayed.held_out, 15)
    result = evaluate(replayed, users, tune=True)
    rows = result["strategies"]
    assert set(STRATEGIES) | {"hybrid, rank blend", "all-time TopPop (training part)",
                              "NCF model alone, whole catalogue", UNION} == set(rows)
    assert result["blend"] == "learned" and replayed.model.blender is not None  # fitted with the model
    assert rows["hybrid"]["served_as"] == {"hybrid (learned)": 15}
    assert rows["hybrid, rank blend"]["served_as"] == {"hybrid (rank)": 15}
    assert rows[UNION]["recall"] >= rows["hybrid"][f"recall@{RECALL_K}"] - 1e-9  # no blend beats its candidates
    assert set(result["paired"]) == set(rows) - {"hybrid", UNION}
    for name, metrics in result["paired"].items():  # hybrid minus the row: mean inside its interval
        for metric, (mean, low, high) in metrics.items():
            assert low <= mean <= high and abs(mean - (rows["hybrid"][metric] - rows[name][metric])) < 1e-9
    for name, row in rows.items():
        if name == UNION:
            continue
        assert all(0.0 <= row[metric] <= 1.0 for metric in (f"hr@{K}", f"ndcg@{K}", f"recall@{RECALL_K}")), name
        assert row[f"hr@{K}"] <= row[f"recall@{RECALL_K}"] and row[f"coverage@{K}"] > 0, name
    for strategy in ("ncf", "item", "content", "similar"):  # every source available, none fell back
        assert rows[strategy]["served_as"] == {strategy: 15}, strategy
    assert replayed.recommender.collaborative.current()[1].user_ids == replayed.model.user_ids
    for user in users[:5]:
        shown = {item.product["product_id"] for item in replayed.recommender.recommend(user, "hybrid", RECALL_K).items}
        assert len(shown) == RECALL_K and not shown & replayed.touched[user]
    best = result["tuning"]["best"]
    assert set(best["weights"]) == set(SOURCES) and best["rank_constant"] in (5, 20, 60)
    table = markdown({**result, "users": len(users)}, "validation")
    assert table.count("\n") == len(rows) + 1 + 4 + len(result["paired"]) and "| `hybrid` |" in table
    assert "| `hybrid, rank blend` |" in table and f"{UNION}: recall" in table
    json.dumps(result, default=str)


def test_list_metrics_by_hand():
    ranked = [["a", "b", "c"], ["c", "a"], ["d"]]
    metrics = list_metrics(ranked, ["b", "c", "x"], n_items=8, k=2, recall_k=3)
    assert metrics == pytest.approx({"hr@2": 2 / 3, "ndcg@2": (1 / 1.5849625 + 1.0) / 3, "recall@3": 2 / 3,
                                     "coverage@2": 4 / 8})
