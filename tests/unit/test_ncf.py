"""ncf/: data and split, negative sampling, metrics, NeuMF vs TopPop on planted clusters, item features, save/load,
the models' contract, the CLI over MovieLens files.

Small generated data only (no Milvus, no text model); run alone with
`python -m pytest tests/unit/test_ncf.py -q -p no:cacheprovider --noconftest`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from ncf.__main__ import main
from ncf.base import Recommender
from ncf.baselines import MatrixFactorization, TopPop
from ncf.data import (
    HeldOut, contains_pairs, from_records, leave_one_out, movielens_genres,
    sample_training_negatives,
)
from ncf.evaluate import evaluate, full_catalogue_metrics, rank_metrics, sampled_metrics
from ncf.item_knn import ItemKNN
from ncf.mappings import IdMapping, ItemFeatures, load_mappings, save_mappings
from ncf.model import SHARE_SCALE, NeuMF
from ncf.recommender import NCFRecommender, latest_model_dir
from ncf.scoring import ScoringTables
from ncf.train import TrainConfig, split_data

SMALL = TrainConfig(epochs=25, batch_size=256, lr=0.005, embed_dim=16, layers=(32, 16), negatives=4, patience=4,
                    seed=1, threads=1, progress=False)


def planted_clusters(n_users=200, n_items=300, clusters=10, per_user=15, inside=0.95, seed=0):
    """Users interact mostly within their cluster (10 clusters of 30 items), preferring its head items (Zipf-like)."""
    rng = np.random.default_rng(seed)
    cluster_items = np.array_split(rng.permutation(n_items), clusters)
    users, items, times = [], [], []
    for user in range(n_users):
        own = cluster_items[user % clusters]
        preference = 1.0 / np.arange(1, len(own) + 1) ** 0.8
        inside_count = rng.binomial(per_user, inside)
        chosen = set(rng.choice(own, size=inside_count, replace=False, p=preference / preference.sum()).tolist())
        while len(chosen) < per_user:
            chosen.add(int(rng.integers(n_items)))
        for item in chosen:
            users.append(f"u{user}")
            items.append(f"i{item}")
            times.append(float(rng.integers(1_700_000_000, 1_700_100_000)))
    return from_records(users, items, np.ones(len(users)), times)


def planted_genres(n_users=240, genres=8, common=20, rare=6, per_user=12, seed=0):
    """Each user picks items of one genre (user n: genre n % genres). A genre's `rare` items are picked by one
    user only, "loner", who picks across genres: their ids say nothing of their genre, their attribute does.
    Interactions and genres by item."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for user in range(n_users):
        genre = user % genres
        for item in rng.choice(common, size=per_user, replace=False):
            users.append(f"u{user}")
            items.append(f"c{genre}-{item}")
            times.append(float(rng.integers(1_000, 100_000)))
    loner = [f"r{genre}-{item}" for genre in range(genres) for item in range(rare)] + ["c0-0", "c1-0"]
    users += ["loner"] * len(loner)
    items += loner
    times += list(map(float, range(len(loner))))  # the two common items are its latest: held out
    attributes = {f"{kind}{genre}-{item}": [f"genre={genre}"]
                  for genre in range(genres) for kind, count in (("c", common), ("r", rare)) for item in range(count)}
    return from_records(users, items, np.ones(len(users)), times), attributes


def rare_item_auc(recommender: NCFRecommender, data, genres=8) -> float:
    """Mean over genre users of P(score of a rare item of the user's genre > that of another genre's)."""
    rare = np.array([index for index, item in enumerate(data.item_ids.ids) if item.startswith("r")])
    rare_genre = np.array([int(data.item_ids.ids[index][1:].split("-")[0]) for index in rare])
    aucs = []
    for user_id in data.user_ids.ids:
        if user_id == "loner":
            continue
        own = rare_genre == int(user_id[1:]) % genres
        scores = recommender.score_ids(user_id, [data.item_ids.ids[index] for index in rare])
        aucs.append((scores[own][:, None] > scores[~own][None, :]).mean())
    return float(np.mean(aucs))


@pytest.fixture(scope="module")
def clusters():
    return planted_clusters()


@pytest.fixture(scope="module")
def genres():
    return planted_genres()


@pytest.fixture(scope="module")
def featured(genres):
    """NeuMF with the planted genres as item features."""
    data, attributes = genres
    return NCFRecommender(SMALL).fit(data, ItemFeatures.from_attributes(data.item_ids, attributes, ("genre",)))


@pytest.fixture(scope="module")
def recommender(clusters):
    return NCFRecommender(SMALL).fit(clusters)


# ---- data ---------------------------------------------------------------------------------------------

def test_id_mapping_round_trips_and_marks_unknown_ids(tmp_path):
    users, items = IdMapping(["ml-u1", "ml-u10"]), IdMapping(["ml5", "ml1", "ml7"])
    assert users.index("ml-u10") == 1 and users.index("nobody") is None and "ml-u1" in users
    assert items.indices(["ml7", "ml9", "ml5"]).tolist() == [2, -1, 0]
    save_mappings(tmp_path / "mappings.json", users, items)
    assert load_mappings(tmp_path / "mappings.json") == (users, items)
    with pytest.raises(ValueError):
        IdMapping(["a", "a"])


def test_records_merge_pairs_by_max_or_sum_and_keep_the_latest_time():
    rows = (["b", "a", "a", "a"], ["x", "x", "y", "x"], [0.1, 0.6, 0.3, 0.1], [5.0, 1.0, 2.0, 3.0])
    merged = from_records(*rows)
    assert merged.user_ids.ids == ["a", "b"] and merged.item_ids.ids == ["x", "y"]
    pairs = {(merged.user_ids.ids[u], merged.item_ids.ids[i]): (w, t)
             for u, i, w, t in zip(merged.users, merged.items, merged.weights, merged.timestamps)}
    assert pairs == {("a", "x"): (pytest.approx(0.6), 3.0), ("a", "y"): (pytest.approx(0.3), 2.0),
                     ("b", "x"): (pytest.approx(0.1), 5.0)}
    summed = from_records(*rows, merge="sum")
    assert sorted(summed.weights.tolist()) == pytest.approx([0.1, 0.3, 0.7])


def test_leave_one_out_holds_out_the_latest_then_the_previous_interaction(clusters):
    split = leave_one_out(clusters, num_negatives=99, seed=3)
    assert len(split.test) == len(split.validation) == clusters.n_users
    assert len(split.train) == len(clusters) - 2 * clusters.n_users
    latest = {}
    for u, i, t in zip(clusters.users, clusters.items, clusters.timestamps):
        latest.setdefault(int(u), []).append((t, int(i)))
    for user, item in zip(split.test.users[:20], split.test.items[:20]):
        ordered = sorted(latest[int(user)])
        assert item == ordered[-1][1]
        assert split.validation.items[list(split.validation.users).index(user)] == ordered[-2][1]
    touched = clusters.pair_keys()
    negatives = split.test.negatives
    assert negatives.shape == (clusters.n_users, 99)
    assert all(len(set(row)) == 99 for row in negatives)
    assert not contains_pairs(touched, split.test.users[:, None] * clusters.n_items + negatives).any()
    assert np.array_equal(leave_one_out(clusters, 99, seed=3).test.negatives, negatives)
    assert not np.array_equal(leave_one_out(clusters, 99, seed=4).test.negatives, negatives)


def test_users_with_fewer_than_three_interactions_stay_in_training():
    data = from_records(["a", "a", "b", "b", "b"], ["x", "y", "x", "y", "z"], np.ones(5), [1, 2, 1, 2, 3])
    split = leave_one_out(data, num_negatives=0)
    assert split.test.users.tolist() == [1] and split.test.items.tolist() == [2]
    assert split.validation.items.tolist() == [1]
    assert len(split.train) == 3


def test_training_negatives_are_never_positives_and_are_seeded(clusters):
    keys = clusters.pair_keys()
    users = np.repeat(clusters.users, 4)
    negatives = sample_training_negatives(users, keys, clusters.n_items, np.random.default_rng(0))
    assert not contains_pairs(keys, users * clusters.n_items + negatives).any()
    again = sample_training_negatives(users, keys, clusters.n_items, np.random.default_rng(0))
    assert np.array_equal(negatives, again)


def test_item_features_index_each_items_values_and_round_trip(tmp_path):
    items = IdMapping(["p1", "p2", "p3"])
    attributes = {"p3": ["brand=Zara", "category=Fashion"], "p1": ["category=Fashion"], "p9": ["brand=Nike"]}
    features = ItemFeatures.from_attributes(items, attributes, ("category", "brand"))
    assert features.values.ids == ["brand=Zara", "category=Fashion"]  # only the mapped items' values, sorted
    assert features.items.tolist() == [[1, -1], [-1, -1], [0, 1]]  # p2 has none
    assert features.summary() == {"fields": ["category", "brand"], "values": 2, "items_with_values": 2}
    features.save(tmp_path / "item_features.json")
    loaded = ItemFeatures.load(tmp_path / "item_features.json")
    assert loaded.fields == features.fields and loaded.values == features.values
    assert np.array_equal(loaded.items, features.items)


def test_movielens_genres_are_multi_valued_and_may_be_none(tmp_path):
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n'
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        '114335,La cravate (1957),(no genres listed)\n', encoding="utf-8")
    assert movielens_genres(tmp_path) == {
        "ml1": ["genre=Adventure", "genre=Animation", "genre=Children"],
        "ml11": ["genre=Comedy", "genre=Drama", "genre=Romance"], "ml114335": []}


# ---- metrics ------------------------------------------------------------------------------------------

def test_rank_metrics_on_hand_computed_ranks():
    positives = np.array([0.5, 0.95, 0.0])
    negatives = np.array([[0.9, 0.7, 0.1, 0.2],  # rank 2: hit@3, ndcg 1/log2(4) = 0.5, auc 2/4
                          [0.9, 0.7, 0.1, 0.2],  # rank 0: ndcg 1, auc 1
                          [0.0, 0.7, 0.1, 0.2]])  # a tie counts against: rank 4, miss; auc 0.5/4
    metrics = rank_metrics(positives, negatives, k=3)
    assert metrics["hr@3"] == pytest.approx(2 / 3)
    assert metrics["ndcg@3"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert metrics["auc"] == pytest.approx((0.5 + 1.0 + 0.125) / 3)
    assert rank_metrics(positives[:1], negatives[:1], k=2) == {"hr@2": 0.0, "ndcg@2": 0.0, "auc": 0.5}


class TableScorer:
    """Scores from a fixed (user, item) table."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=float)

    def score(self, users, items):
        return self.table[np.asarray(users), np.asarray(items)]


def test_full_catalogue_metrics_exclude_known_items_and_count_coverage():
    table = [[9, 8, 7, 6, 5, 4],  # user 0 knows items 0 and 1; held out item 3 → rank 1 among {2,3,4,5}
             [1, 2, 3, 4, 5, 6]]  # user 1 knows item 5; held out item 0 → rank 4 among {0..4}
    held_out = HeldOut(users=np.array([0, 1]), items=np.array([3, 0]), negatives=np.array([[4], [1]]),
                       known_users=np.array([1, 0, 0]), known_items=np.array([5, 1, 0]))
    metrics = full_catalogue_metrics(TableScorer(table), held_out, n_items=6, k=2)
    assert metrics["recall@2"] == 0.5
    assert metrics["full_ndcg@2"] == pytest.approx((1 / math.log2(3)) / 2)
    assert metrics["coverage@2"] == 0.5  # top-2 lists {2, 3} and {4, 3}
    everything = evaluate(TableScorer(table), held_out, n_items=6, k=2)  # sampled: ranks 0 and 1 of 2
    assert everything["hr@2"] == 1.0 and everything["auc"] == 0.5
    assert everything["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert set(everything) == {"hr@2", "ndcg@2", "auc", "recall@2", "full_ndcg@2", "coverage@2"}


def test_full_catalogue_metrics_rank_a_sample_of_users_beyond_the_pair_budget():
    table = np.arange(40 * 50).reshape(40, 50) % 7  # 40 users × 50 items
    held_out = HeldOut(users=np.arange(40), items=np.arange(40) % 50, negatives=np.zeros((40, 1), dtype=int),
                       known_users=np.array([], dtype=int), known_items=np.array([], dtype=int))
    scorer = TableScorer(table)
    scored = []
    scorer.score = lambda users, items: (scored.append(len(users)), TableScorer(table).score(users, items))[1]
    sampled = full_catalogue_metrics(scorer, held_out, n_items=50, k=2, max_pairs=500)  # 10 users
    assert sum(scored) == 500
    assert sampled == full_catalogue_metrics(scorer, held_out, n_items=50, k=2, max_pairs=500)  # a fixed sample
    scored.clear()
    full_catalogue_metrics(scorer, held_out, n_items=50, k=2)
    assert sum(scored) == 40 * 50  # within the default budget: every user


# ---- models -------------------------------------------------------------------------------------------

def test_neumf_learns_planted_clusters_and_beats_toppop(clusters, recommender):
    split = split_data(clusters, SMALL)
    neumf = sampled_metrics(recommender.evaluation_model, split.test)
    toppop = sampled_metrics(TopPop().fit(split.train), split.test)
    assert neumf["hr@10"] >= 0.85, neumf  # an oracle knowing the clusters and their popularity gets 0.955
    assert neumf["hr@10"] >= toppop["hr@10"] + 0.5 and neumf["ndcg@10"] > toppop["ndcg@10"] + 0.4, (neumf, toppop)
    history = recommender.history
    assert history.epochs[0]["loss"] > history.epochs[-1]["loss"]
    best_ndcg = history.epochs[history.best_epoch - 1]["val_ndcg@10"]
    assert best_ndcg >= max(record["val_ndcg@10"] for record in history.epochs) - SMALL.min_delta
    mf = MatrixFactorization(replace(SMALL, lr=0.01)).fit(clusters)
    assert sampled_metrics(mf, split.test)["hr@10"] >= 0.7


def test_every_model_keeps_the_contract(clusters, recommender, tmp_path):
    """fit, score(users, items) by index, recommend and score_ids by external id, save and load: the same for
    TopPop, MF, item-kNN and NeuMF (what the evaluation and serving rely on)."""
    models = {"toppop": TopPop().fit(split_data(clusters, SMALL).train), "itemknn": ItemKNN().fit(clusters),
              "mf": MatrixFactorization(replace(SMALL, epochs=2)).fit(clusters), "neumf": recommender}
    users, items = np.array([0, 0, 5]), np.array([1, 2, 3])
    for name, model in models.items():
        assert isinstance(model, Recommender), name
        scores = model.score(users, items)
        assert scores.shape == (3,) and np.isfinite(scores).all(), name
        loaded = type(model).load(model.save(tmp_path / name))
        assert np.allclose(loaded.score(users, items), scores), name
        top = model.recommend("u0", 5, exclude=["i1"])
        ranked = [score for _, score in top]
        assert len(top) == 5 and "i1" not in dict(top) and ranked == sorted(ranked, reverse=True), name
        assert np.allclose(model.score_ids("u0", list(dict(top))), ranked), name
        assert model.recommend("nobody", 5) == [] and model.score_ids("nobody", ["i1"]) is None, name


def test_item_features_rank_rarely_seen_items_by_their_attributes(genres, featured):
    data, _ = genres
    with_features = rare_item_auc(featured, data)
    without = rare_item_auc(NCFRecommender(SMALL).fit(data), data)
    assert with_features >= 0.9 and with_features >= without + 0.2, (with_features, without)
    assert featured.model.n_attribute_values == 8 and featured.evaluation_model.n_attribute_values == 8


def test_the_served_model_is_refit_on_every_interaction(clusters, recommender):
    split = split_data(clusters, SMALL)
    history, refit_history = recommender.history, recommender.refit_history
    assert history.interactions == len(split.train) and refit_history.interactions == len(clusters)
    assert recommender.served == {"weights": "refit on all interactions", "interactions": len(clusters),
                                  "epochs": history.best_epoch}
    assert [record["lr"] for record in refit_history.epochs] == [
        record["lr"] for record in history.epochs[:history.best_epoch]]
    for held_out in (split.validation, split.test):  # the refit saw each user's two latest interactions
        served, evaluation = (sampled_metrics(model, held_out) for model in (recommender.model,
                                                                             recommender.evaluation_model))
        assert served["auc"] > evaluation["auc"] + 0.01 and served["hr@10"] > evaluation["hr@10"], (served, evaluation)


def test_without_refit_the_evaluation_run_is_served(clusters, tmp_path):
    recommender = NCFRecommender(replace(SMALL, epochs=2, refit=False)).fit(clusters)
    assert recommender.model is recommender.evaluation_model and recommender.refit_history is None
    assert recommender.served == {"weights": "evaluation run", "interactions": len(clusters) - 2 * clusters.n_users,
                                  "epochs": recommender.history.best_epoch}
    recommender.save(tmp_path / "model")
    assert not (tmp_path / "model" / "evaluation_model.pt").exists()
    loaded = NCFRecommender.load(tmp_path / "model", evaluation=True)
    assert loaded.evaluation_model is loaded.model and loaded.refit_history is None


def test_training_is_reproducible_for_a_seed(clusters):
    config = replace(SMALL, epochs=2)
    first, second = NCFRecommender(config).fit(clusters), NCFRecommender(config).fit(clusters)
    products = clusters.item_ids.ids
    assert np.array_equal(first.score_ids("u3", products), second.score_ids("u3", products))


def test_training_uses_every_core_unless_threads_are_set(clusters, monkeypatch):
    """`python -m ncf train` by hand gets every core; OMP_NUM_THREADS (set by POST /train) or --threads limit it."""
    config = replace(SMALL, epochs=1, refit=False, threads=None)
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        NCFRecommender(config).fit(clusters)
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        NCFRecommender(config).fit(clusters)
        assert torch.get_num_threads() == 1
        NCFRecommender(replace(config, threads=2)).fit(clusters)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_unknown_users_get_none_and_unknown_products_nan(recommender):
    assert recommender.score_ids("nobody", ["i1", "i2"]) is None
    scores = recommender.score_ids("u0", ["i1", "no-such-product", "i2"])
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    assert recommender.recommend("nobody", 5) == []


def test_recommend_ranks_by_score_and_honours_exclude(recommender):
    top = recommender.recommend("u0", k=5)
    assert len(top) == 5 and [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    best = top[0][0]
    again = recommender.recommend("u0", k=5, exclude=[best, "no-such-product"])
    assert best not in [product for product, _ in again] and again[0] == top[1]
    scores = recommender.score_ids("u0", [product for product, _ in top])
    assert np.allclose(scores, [s for _, s in top])


def test_save_then_load_gives_identical_scores(recommender, tmp_path):
    recommender.metrics = {"neumf": {"hr@10": 1.0}}
    recommender.save(tmp_path / "model")
    loaded = NCFRecommender.load(tmp_path / "model")
    products = recommender.item_ids.ids + ["no-such-product"]
    for user in ("u0", "u17", "u199"):
        assert np.array_equal(loaded.score_ids(user, products), recommender.score_ids(user, products), equal_nan=True)
    assert loaded.config == recommender.config and loaded.metrics == recommender.metrics
    assert loaded.evaluation_model is None  # serving loads model.pt only
    assert loaded.history == recommender.history and loaded.refit_history == recommender.refit_history
    users, items = np.arange(200).repeat(3), np.tile([0, 150, 299], 200)
    evaluation = NCFRecommender.load(tmp_path / "model", evaluation=True).evaluation_model
    assert np.array_equal(evaluation.score(users, items), recommender.evaluation_model.score(users, items))
    assert loaded.user_ids == recommender.user_ids and loaded.item_ids == recommender.item_ids
    assert loaded.item_features is None and not (tmp_path / "model" / "item_features.json").exists()


def test_model_dirs_written_before_the_item_bias_still_load(recommender, tmp_path):
    directory = recommender.save(tmp_path / "old")
    for weights_file in ("model.pt", "evaluation_model.pt"):
        weights = torch.load(directory / weights_file, weights_only=True)
        bias = weights.pop("item_bias").numpy()
        torch.save(weights, directory / weights_file)
    config = json.loads((directory / "config.json").read_text())
    del config["model"]["item_bias"]
    (directory / "config.json").write_text(json.dumps(config))
    loaded = NCFRecommender.load(directory, evaluation=True)
    assert loaded.model.item_bias is None and np.abs(bias).max() > 1e-3  # a trained bias is gone
    users, items = np.full(len(bias), 3), np.arange(len(bias))
    without_bias = recommender.evaluation_model.score(users, items) - bias
    assert np.allclose(loaded.evaluation_model.score(users, items), without_bias, atol=1e-5)


def test_attribute_shares_count_the_users_other_interactions_per_field():
    # values 0 category=a, 1 category=b (field 1), 2 brand=x (field 0); item 2 has no brand
    model = NeuMF(2, 3, 4, (4,), n_attribute_values=3, item_attributes=np.array([[0, 2], [1, 2], [0, -1]]),
                  value_fields=np.array([1, 1, 0]))
    users, items = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 2, 0, 2])
    assert not model.attribute_shares(users, items).any()  # no history yet
    model.set_history(np.array([0, 0, 1]), np.array([0, 1, 2]))
    shares = model.attribute_shares(users, items).tolist()
    # user 0 touched items 0 and 1: each scored against the other only (the pair leaves itself out)
    assert shares[0] == [1.0, 0.0] and shares[1] == [1.0, 0.0]
    assert shares[2] == [0.0, 0.5]  # a new item: one of the user's two items is in category a
    assert shares[3] == [0.0, 1.0] and shares[4] == [0.0, 0.0]  # user 1's only item, left out: nothing


def test_attribute_shares_are_learnt_and_dirs_written_before_them_load(genres, featured, tmp_path):
    data, _ = genres
    assert featured.model.attribute_shares is not None
    assert featured.model.share_weights.item() > 0  # the planted genres: a user's share of a genre predicts it
    directory = featured.save(tmp_path / "old")
    weights = torch.load(directory / "model.pt", weights_only=True)
    share_weight = weights.pop("share_weights")
    for name in [name for name in weights if name.startswith("attribute_shares.")]:
        del weights[name]
    torch.save(weights, directory / "model.pt")
    config = json.loads((directory / "config.json").read_text())
    del config["model"]["attribute_shares"]
    (directory / "config.json").write_text(json.dumps(config))
    loaded = NCFRecommender.load(directory)
    assert loaded.model.attribute_shares is None
    users, items = np.full(data.n_items, 5), np.arange(data.n_items)
    share_term = SHARE_SCALE * featured.model.attribute_shares(torch.as_tensor(users), torch.as_tensor(items))[:, 0]
    expected = featured.model.score(users, items) - (share_term * share_weight).numpy()
    assert np.allclose(loaded.model.score(users, items), expected, atol=1e-5)


def test_save_then_load_gives_identical_scores_with_item_features(genres, featured, tmp_path):
    data, _ = genres
    featured.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["item_features"] == {"fields": ["genre"], "values": 8, "items_with_values": data.n_items}
    assert config["model"]["n_attribute_values"] == 8 and config["train"]["item_features"] is True
    loaded = NCFRecommender.load(tmp_path / "model", evaluation=True)
    products = data.item_ids.ids + ["no-such-product"]
    for user in ("u0", "u7", "u239"):
        assert np.array_equal(loaded.score_ids(user, products), featured.score_ids(user, products), equal_nan=True)
    users, items = np.arange(data.n_users).repeat(3), np.tile([0, 70, data.n_items - 1], data.n_users)
    assert np.array_equal(loaded.evaluation_model.score(users, items), featured.evaluation_model.score(users, items))
    assert loaded.item_features.values == featured.item_features.values
    assert np.array_equal(loaded.item_features.items, featured.item_features.items)


def test_latest_model_dir_ignores_partial_and_foreign_directories(recommender, tmp_path):
    assert latest_model_dir(tmp_path / "missing") is None
    older = recommender.save(tmp_path / "ncf-20260101T000000Z-aaaaaaaa")
    newer = recommender.save(tmp_path / "ncf-20260102T000000Z-bbbbbbbb")
    recommender.save(tmp_path / ".ncf-20260103T000000Z-cccccccc.partial")  # still being written
    (tmp_path / "ncf-20260104T000000Z-dddddddd").mkdir()  # incomplete
    (tmp_path / "other-20260105T000000Z-eeeeeeee").mkdir()
    assert latest_model_dir(tmp_path) == newer
    (newer / "model.pt").unlink()
    assert latest_model_dir(tmp_path) == older


def test_cli_item_features_can_be_turned_off(tmp_path):
    data = planted_clusters(n_users=30, n_items=120, clusters=8, per_user=10, seed=6)
    (tmp_path / "ml").mkdir()
    with open(tmp_path / "ml" / "ratings.csv", "w", encoding="utf-8") as ratings:
        ratings.write("userId,movieId,rating,timestamp\n")
        ratings.writelines(f"{data.user_ids.ids[u][1:]},{data.item_ids.ids[i][1:]},4.0,{int(t)}\n"
                           for u, i, t in zip(data.users, data.items, data.timestamps))
    genres = {item: "(no genres listed)" if item % 10 == 0 else f"G{item % 3}|H{item % 2}" for item in range(120)}
    (tmp_path / "ml" / "movies.csv").write_text(
        "movieId,title,genres\n" + "".join(f"{item},Movie {item},{genres[item]}\n" for item in genres),
        encoding="utf-8")
    out = tmp_path / "models"
    common = ["--epochs", "2", "--embed-dim", "8", "--layers", "16,8", "--threads", "1", "--no-refit",
              "--out", str(out)]

    def trained(*args) -> dict:
        assert main(["train", *args, *common]) == 0
        return json.loads((latest_model_dir(out) / "config.json").read_text())

    movielens = trained("--source", "movielens", "--path", str(tmp_path / "ml"))
    with_genres = sum(int(item[1:]) % 10 != 0 for item in data.item_ids.ids)  # movie ids: the planted item numbers
    assert movielens["item_features"] == {"fields": ["genre"], "values": 5, "items_with_values": with_genres}
    assert movielens["train"]["attribute_shares"] is False and movielens["model"]["attribute_shares"] is False
    shares = trained("--source", "movielens", "--path", str(tmp_path / "ml"), "--attribute-shares")
    assert shares["model"]["attribute_shares"] is True
    off = trained("--source", "movielens", "--path", str(tmp_path / "ml"), "--no-item-features")
    assert off["train"]["item_features"] is False and off["item_features"] is None
    assert off["model"]["n_attribute_values"] == 0 and not (latest_model_dir(out) / "item_features.json").exists()


@pytest.mark.parametrize("kind", ["ids", "attributes", "attribute shares"])
def test_scoring_tables_give_the_forward_pass_logits_and_the_gmf_towers_its_gmf_part(kind):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    attributes = {"n_attribute_values": 6, "item_attributes": rng.integers(-1, 6, (40, 3))} if kind != "ids" else {}
    shares = {"value_fields": np.array([0, 0, 1, 1, 2, 2])} if kind == "attribute shares" else {}
    model = NeuMF(12, 40, 8, (16, 8), **attributes, **shares)
    for parameter in model.parameters():  # trained-looking weights: biases and share weights non-zero
        torch.nn.init.normal_(parameter, std=0.3)
    model.set_history(rng.integers(0, 12, 60), rng.integers(0, 40, 60))
    tables = ScoringTables(model.eval())
    for user in (0, 7):
        forward = model.score(np.full(40, user), np.arange(40))
        assert np.allclose(tables.score(user), forward, atol=1e-5)
        assert np.allclose(tables.score(user, np.array([39, 3, 3])), forward[[39, 3, 3]], atol=1e-5)
        with torch.no_grad():
            items = torch.arange(40)
            gmf_item = model.gmf_item(items) + (model.gmf_attribute(model.item_attributes) if attributes else 0)
            gmf = model.output.weight[0, :8] @ (model.gmf_user.weight[user] * gmf_item).T
            expected = (gmf + model.output.bias + model.item_bias).numpy()
        assert np.allclose(tables.gmf_items() @ tables.gmf_user(user), expected, atol=1e-5)
        assert np.allclose(tables.gmf_scores(user), expected, atol=1e-5)
