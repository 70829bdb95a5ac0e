"""The feedback ranker: features, training on logged lists, save/load and the served newest version."""
from __future__ import annotations

import random

import numpy as np
import pytest

from app.core.ranker import FEATURES, Feedback, ServedRanker, features, ndcg_at, train
from app.storage.products import SearchHit


def hits(query_products: list[str]) -> list[SearchHit]:
    return [SearchHit({"product_id": p, "category": "Home", "sub_category": "lamp", "price": 10.0, "rating": 4.0},
                      1.0 / (rank + 60), None) for rank, p in enumerate(query_products)]


def test_features_name_ranks_feedback_and_category_match():
    lists = [("desk lamp", ["p1", "p2"], {2: {"view", "purchase"}}), ("desk lamp", ["p2", "p1"], {})]
    x = features("Desk  LAMP", hits(["p1", "p2"]), Feedback.of_lists(lists), {"p2": 3.0})
    assert x.shape == (2, len(FEATURES))
    row = dict(zip(FEATURES, x[1]))
    assert row["fused_rank"] == 2 and row["category_match"] == 1.0 and row["popularity"] > 0
    assert row["q_shown"] == pytest.approx(np.log1p(2))
    # p2 was clicked once at position 2 (rate 1/2) and not at position 1 (rate 0): 1 click, 0.5 expected
    assert row["q_clicks_over_expected"] == pytest.approx((1 + 1) / (0.5 + 1))
    assert dict(zip(FEATURES, x[0]))["q_clicks_over_expected"] == pytest.approx(1 / 1.5)


def logged_lists(count: int, seed: int = 0):
    """Shoppers who buy the 'good' products (ids ending in 7) wherever they are shown."""
    rng = random.Random(seed)
    products = [f"p{i}" for i in range(20)]
    lists = []
    for _ in range(count):
        shown = rng.sample(products, 10)
        outcomes = {pos: {"view", "purchase"} for pos, p in enumerate(shown, 1) if p.endswith("7") and rng.random() < .8}
        lists.append(("lamp", shown, outcomes))
    return lists, products


def test_trained_ranker_learns_what_shoppers_chose_and_survives_save_load(tmp_path):
    lists, products = logged_lists(1000)
    ranker, metrics = train(lists, lambda query: hits(products), {}, min_lists=200)
    assert metrics["training_lists"] >= 200
    reordered = ranker.rerank("lamp", hits(products), {})
    assert {hit.product["product_id"] for hit in reordered[:2]} == {"p7", "p17"}
    served = ServedRanker(tmp_path, check_seconds=0)
    assert served.ranker is None and served.rerank("lamp", hits(products), lambda ids: {}) == hits(products)
    ranker.save(tmp_path / "20261203T000000-aaaaaa", metrics)
    again = served.rerank("lamp", hits(products), lambda ids: {})
    assert [h.product["product_id"] for h in again] == [h.product["product_id"] for h in reordered]


def test_too_little_feedback_trains_nothing():
    lists, products = logged_lists(100)
    with pytest.raises(ValueError, match="labelled search lists"):
        train(lists, lambda query: hits(products), {}, min_lists=200)


def test_ndcg():
    assert ndcg_at([3, 2, 0], [0, 2, 3]) == pytest.approx(1.0)
    assert ndcg_at([0, 0, 3], [3, 0, 0]) == pytest.approx(7 / 2 / 7)
    assert ndcg_at([0], [0]) == 0.0
