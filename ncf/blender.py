"""The learned blend of recommendation candidates: LightGBM LambdaRank over each candidate's evidence.

Evidence per candidate (`features`): the NeuMF score and its rank among the candidates, the item-to-item
score (the `item` source's: similarity to the user's recent items weighted by recency) and its rank, the
similarity to each of the RECENT most recent items (newest first), the item's training count (log) and its
rank, and which of those sources proposed it.

Fitted when a model is trained (`fit_blender`), on a held-out slice of the model's own training
interactions: the evaluation run's split (each user's two latest interactions held out) gives the labels,
and the evidence comes from what was fit on the rest: the evaluation run's NeuMF, item neighbours and item
counts of the training part. Serving computes the same evidence with the served model (`Blender.evidence`).
Saved in the model directory (blender.json), so it swaps with the model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .base import best
from .data import Split
from .item_knn import DECAY, ItemKNN

if TYPE_CHECKING:
    from .recommender import NCFRecommender
    from .scoring import ScoringTables

RECENT = 5  # recent items whose similarities are features one by one
PROPOSERS = ("collaborative", "item", "popular")
FEATURES = ("collaborative", "collaborative_rank", "item", "item_rank",
            *(f"item_recent_{n}" for n in range(1, RECENT + 1)), "popular", "popular_rank",
            *(f"proposed_{source}" for source in PROPOSERS))
CANDIDATES = 100  # per source when fitting (RECOMMENDATION_CANDIDATES' default)
SHORTLIST = 500  # the GMF part's best, ordered by NeuMF for the collaborative candidates (COLLABORATIVE_CANDIDATES')
MAX_USERS = 5000  # users sampled for fitting
PARAMS = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "num_leaves": 7, "min_data_in_leaf": 50,
          "learning_rate": 0.05, "lambdarank_truncation_level": 20, "feature_fraction": 1.0, "verbose": -1,
          "num_threads": 1, "deterministic": True, "seed": 0}
ROUNDS = 150


def features(collaborative: np.ndarray, item: np.ndarray, recent_similarities: np.ndarray, counts: np.ndarray,
             proposed: dict[str, np.ndarray]) -> np.ndarray:
    """(candidates × FEATURES). `collaborative`: NeuMF scores (NaN: unknown item); `item`: the item source's
    scores (0 or NaN: none); `recent_similarities`: (recent items, newest first) × candidates; `counts`: training
    counts; `proposed`: source → bool mask."""
    n = len(collaborative)
    rows = np.full((RECENT, n), np.nan)
    rows[:min(RECENT, len(recent_similarities))] = recent_similarities[:RECENT]
    item = np.nan_to_num(np.asarray(item, dtype=np.float64))
    popular = np.log1p(np.asarray(counts, dtype=np.float64))
    columns = [collaborative, ranks(collaborative), item, ranks(np.where(item > 0, item, np.nan)), *rows, popular,
               ranks(np.where(popular > 0, popular, np.nan)),
               *(np.asarray(proposed.get(source, np.zeros(n, bool)), dtype=np.float64) for source in PROPOSERS)]
    return np.column_stack([np.asarray(column, dtype=np.float64) for column in columns]) if n else np.empty(
        (0, len(FEATURES)))


def ranks(values: np.ndarray) -> np.ndarray:
    """1 for the highest value among the candidates, 2 for the next...; NaN stays NaN (no evidence)."""
    values = np.asarray(values, dtype=np.float64)
    present = np.flatnonzero(np.isfinite(values))
    ranks = np.full(len(values), np.nan)
    ranks[present[np.argsort(-values[present], kind="stable")]] = np.arange(1, len(present) + 1)
    return ranks


class Blender:
    """A LambdaRank booster over FEATURES and the item counts of the interactions the model was fit on."""

    FILE = "blender.json"

    def __init__(self, booster, item_counts: np.ndarray, info: dict | None = None):
        self.booster = booster
        self.item_counts = np.asarray(item_counts, dtype=np.float64)
        self.info = info or {}

    def evidence(self, model: "NCFRecommender", user_id: str, recent: Sequence[str], product_ids: Sequence[str],
                 proposed: dict[str, np.ndarray], collaborative: np.ndarray | None = None,
                 item: np.ndarray | None = None) -> np.ndarray:
        """FEATURES of the candidates for the user, from the served model (NCF scores, neighbours, counts);
        `collaborative`, `item`: the model's and the item source's scores of `product_ids` when the caller has
        them already."""
        items = model.item_ids.indices(list(product_ids))
        if collaborative is None:
            collaborative = model.score_ids(user_id, list(product_ids))
        if collaborative is None:
            collaborative = np.full(len(items), np.nan)
        similarities = (model.item_knn.similarities_to(list(recent)[:RECENT], product_ids)
                        if model.item_knn is not None else np.zeros((0, len(items))))
        if item is None:
            item = (model.item_knn.score_recent(recent, product_ids) if model.item_knn is not None
                    else np.zeros(len(items)))
        counts = np.where(items >= 0, self.item_counts[np.maximum(items, 0)], 0.0) if len(items) else np.empty(0)
        return features(collaborative.astype(np.float64), item, similarities, counts, proposed)

    def score(self, evidence: np.ndarray) -> np.ndarray:
        return self.booster.predict(evidence, num_threads=1) if len(evidence) else np.empty(0)

    def save(self, directory: Path) -> None:
        (Path(directory) / self.FILE).write_text(json.dumps({
            "features": list(FEATURES), "info": self.info, "item_counts": self.item_counts.tolist(),
            "booster": self.booster.model_to_string()}), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "Blender | None":
        """The directory's blender; None without one (or one of other features: then the rank blend serves)."""
        path = Path(directory) / cls.FILE
        if not path.is_file():
            return None
        import lightgbm

        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved["features"] != list(FEATURES):
            return None
        return cls(lightgbm.Booster(model_str=saved["booster"]), np.asarray(saved["item_counts"]), saved["info"])


def fit_blender(tables: "ScoringTables", split: Split, final_counts: np.ndarray, candidates: int = CANDIDATES,
                max_users: int = MAX_USERS, seed: int = 0, recent_items: int = 10, decay: float = DECAY,
                shortlist: int = SHORTLIST) -> Blender | None:
    """LambdaRank on the evaluation split: per user, the candidates the sources propose from the training part
    (`candidates` each: the evaluation NeuMF's `tables`, item neighbours of the training part, training counts),
    labelled 1 for the user's held-out items (validation and test of `split`). None when no user has a
    held-out item among their candidates. The collaborative candidates are found as serving finds them by
    default (COLLABORATIVE_RETRIEVAL=ann): NeuMF orders the GMF part's `shortlist` best. `final_counts`: the
    item counts serving will use; `recent_items`, `decay`: the item source's, as serving computes it."""
    import lightgbm

    started = time.perf_counter()
    train = split.train
    n_items = train.n_items
    knn = ItemKNN().fit(train)
    counts = np.bincount(train.items, minlength=n_items).astype(np.float64)
    held: dict[int, set[int]] = {}
    for part in (split.validation, split.test):
        for user, item in zip(part.users.tolist(), part.items.tolist()):
            held.setdefault(user, set()).add(item)
    users = sorted(held)
    if len(users) > max_users:
        users = sorted(np.random.default_rng(seed).choice(users, max_users, replace=False).tolist())
    order = np.lexsort((train.items, train.timestamps, train.users))
    starts = np.searchsorted(train.users[order], np.arange(train.n_users + 1))
    blocks, labels, groups = [], [], []
    popular_order = np.argsort(-counts, kind="stable")
    for user in users:
        history = train.items[order[starts[user]:starts[user + 1]]]
        recent = history[::-1][:recent_items]
        similarities = knn.similarities[recent].toarray() if len(recent) else np.zeros((0, n_items))
        profile = decay ** np.arange(len(recent)) @ similarities
        gmf = tables.gmf_scores(user)
        gmf[history] = -np.inf
        found = best(gmf, shortlist)
        profile_masked = profile.copy()
        profile_masked[history] = 0.0
        seen = set(history.tolist())
        proposals = {
            "collaborative": found[best(tables.score(user, found), candidates)],
            "item": [i for i in best(profile_masked, candidates) if profile_masked[i] > 0],
            "popular": [i for i in popular_order[:candidates + len(history)] if i not in seen][:candidates],
        }
        union = np.array(list(dict.fromkeys(int(i) for ids in proposals.values() for i in ids)), dtype=np.int64)
        label = np.isin(union, list(held[user])).astype(np.int32)
        if not label.any():
            continue
        proposed = {source: np.isin(union, np.asarray(ids, dtype=np.int64)) for source, ids in proposals.items()}
        blocks.append(features(tables.score(user, union).astype(np.float64), profile[union], similarities[:, union],
                               counts[union], proposed))
        labels.append(label)
        groups.append(len(union))
    if not groups:
        return None
    data = lightgbm.Dataset(np.vstack(blocks), np.concatenate(labels), group=groups, feature_name=list(FEATURES))
    booster = lightgbm.train(PARAMS, data, num_boost_round=ROUNDS)
    info = {"users": len(groups), "candidates": int(sum(groups)), "positives": int(sum(map(np.sum, labels))),
            "rounds": ROUNDS, "seconds": round(time.perf_counter() - started, 1)}
    return Blender(booster, final_counts, info)

