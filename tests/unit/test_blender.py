"""The learned blend (ncf/blender.py): its features, fitting on the evaluation split, saving with the model."""
import json

import numpy as np

from ncf.blender import FEATURES, RECENT, Blender, features, fit_blender
from ncf.item_knn import DECAY
from ncf.data import from_records, leave_one_out
from ncf.recommender import NCFRecommender
from ncf.train import TrainConfig


def test_features_by_hand():
    similarities = np.array([[0.5, 0.0, 0.2], [0.0, 0.0, 0.4]])  # two recent items, newest first
    table = features(np.array([2.0, -1.0, np.nan]), np.array([0.5, np.nan, 0.6]), similarities, np.array([9, 0, 3]),
                     {"item": np.array([True, False, True])})
    column = {name: table[:, n] for n, name in enumerate(FEATURES)}
    assert table.shape == (3, len(FEATURES))
    assert column["collaborative_rank"][:2].tolist() == [1, 2] and np.isnan(column["collaborative_rank"][2])
    assert np.allclose(column["item"], [0.5, 0.0, 0.6]) and column["item_rank"][[0, 2]].tolist() == [2, 1]
    assert np.isnan(column["item_rank"][1])  # no similarity: no rank
    assert column["item_recent_1"].tolist() == [0.5, 0.0, 0.2] and column["item_recent_2"].tolist() == [0, 0, 0.4]
    assert np.isnan(column[f"item_recent_{RECENT}"]).all()  # fewer recent items than RECENT
    assert np.allclose(column["popular"], np.log1p([9, 0, 3])) and column["popular_rank"][[0, 2]].tolist() == [1, 2]
    assert column["proposed_item"].tolist() == [1, 0, 1] and not column["proposed_collaborative"].any()


def chain_interactions(users=120, items=40, length=8, seed=0):
    """Each user walks the item chain i, i+1, ... from a random start: the next item is the one most often
    seen right after the latest, which item-to-item similarity finds and popularity does not."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u:03d}", f"i{(start + step) % items:02d}", float(step))
            for u, start in enumerate(rng.integers(0, items, users)) for step in range(length)]
    user_ids, item_ids, times = zip(*rows)
    return from_records(user_ids, item_ids, [1.0] * len(rows), times)


class NoOpinion:
    """Stand-in scoring tables of a NeuMF that scores every item alike."""

    def __init__(self, n_items: int):
        self.n_items = n_items

    def gmf_scores(self, user):
        return np.zeros(self.n_items, np.float32)

    def score(self, user, items):
        return np.zeros(len(items), np.float32)


def test_the_blender_learns_what_predicts_the_held_out_items_and_survives_a_round_trip(tmp_path):
    interactions = chain_interactions()
    split = leave_one_out(interactions, num_negatives=5)
    blender = fit_blender(NoOpinion(interactions.n_items), split,
                          np.bincount(interactions.items, minlength=interactions.n_items))
    assert blender is not None and blender.info["users"] > 50 and blender.info["positives"] >= blender.info["users"]
    importance = dict(zip(FEATURES, blender.booster.feature_importance("gain")))
    assert max(importance, key=importance.get).startswith("item")  # the chain's signal, not popularity
    # a candidate similar to the user's recent items beats one as popular but similar to none of them
    similar = np.array([[0.6, 0.0], [0.4, 0.0], [0.3, 0.0], [0.2, 0.0], [0.1, 0.0]])
    evidence = features(np.zeros(2), DECAY ** np.arange(5) @ similar, similar, np.array([30, 30]),
                        {"item": np.array([True, False])})
    assert blender.score(evidence)[0] > blender.score(evidence)[1]
    blender.save(tmp_path)
    loaded = Blender.load(tmp_path)
    assert np.array_equal(loaded.score(evidence), blender.score(evidence))
    assert np.array_equal(loaded.item_counts, blender.item_counts) and loaded.info == blender.info


def test_no_blender_without_a_file_or_with_other_features(tmp_path):
    assert Blender.load(tmp_path) is None
    (tmp_path / Blender.FILE).write_text(json.dumps({"features": ["something else"], "info": {}, "item_counts": [],
                                                     "booster": ""}))
    assert Blender.load(tmp_path) is None  # written for other features: the rank blend serves


def test_the_model_fits_its_blender_and_the_directory_keeps_it(tmp_path):
    interactions = chain_interactions(users=60)
    config = TrainConfig(epochs=1, batch_size=256, embed_dim=4, layers=(8, 4), progress=False, threads=1,
                         item_features=False, eval_negatives=5)  # 40 items: the split needs 5 untouched
    model = NCFRecommender(config).fit(interactions)
    assert model.blender is not None
    items = list(interactions.item_ids.ids[:6])
    proposed = {"item": np.ones(6, bool)}
    evidence = model.blender.evidence(model, "u000", items[:2], items, proposed)
    assert evidence.shape == (6, len(FEATURES)) and np.isfinite(evidence[:, 0]).all()
    item = np.nan_to_num(model.item_knn.score_recent(items[:2], items))  # the item source's score
    assert np.allclose(evidence[:, FEATURES.index("item")], item) and item.any()
    loaded = NCFRecommender.load(model.save(tmp_path / "ncf-20260101T000000Z-0"))
    assert np.allclose(loaded.blender.score(loaded.blender.evidence(loaded, "u000", items[:2], items, proposed)),
                       model.blender.score(evidence))
    unknown = model.blender.evidence(model, "nobody", items[:2], items, proposed)
    assert np.isnan(unknown[:, 0]).all()
    without = NCFRecommender(TrainConfig(**{**config.to_dict(), "blender": False})).fit(interactions)
    assert without.blender is None and not (without.save(tmp_path / "plain") / Blender.FILE).exists()


def test_no_blender_when_no_user_has_a_held_out_item_among_the_candidates():
    interactions = chain_interactions(users=10)
    split = leave_one_out(interactions, num_negatives=5)
    assert fit_blender(NoOpinion(interactions.n_items), split, np.zeros(interactions.n_items),
                       candidates=0) is None
