"""The contract every model keeps (as implicit's RecommenderBase): `fit` on Interactions, `score(users, items)`
over index arrays (what the evaluation ranks by), `recommend` a user's top k by external ids, `save` to and
`load` from a directory. Indices are those of the `user_ids` / `item_ids` mappings `fit` sets."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .data import Interactions
from .mappings import IdMapping


class Recommender(ABC):
    user_ids: IdMapping
    item_ids: IdMapping

    @abstractmethod
    def fit(self, interactions: Interactions) -> "Recommender":
        """Learn from `interactions`; returns self."""

    @abstractmethod
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """One score per (users[i], items[i]) index pair, higher is better."""

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write the fitted model into `directory` (created if missing)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> "Recommender":
        """The model `save` wrote into `directory`."""

    def score_ids(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray | None:
        """The user's scores of items by external id: None for a user the model has never seen, NaN for items."""
        user = self.user_ids.index(user_id)
        if user is None:
            return None
        items = self.item_ids.indices(list(item_ids))
        known = items >= 0
        scores = np.full(len(items), np.nan, dtype=np.float32)
        scores[known] = self.score(np.full(int(known.sum()), user), items[known])
        return scores

    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The k best (item id, score) over every item, without `exclude`; [] for a user never seen."""
        user = self.user_ids.index(user_id)
        return [] if user is None else self.top(self.user_scores(user), k, exclude)

    def user_scores(self, user: int) -> np.ndarray:
        """The user's score of every item, in index order."""
        return np.asarray(self.score(np.full(len(self.item_ids), user), np.arange(len(self.item_ids))),
                          dtype=np.float32)

    def top(self, scores: np.ndarray, k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The k best (item id, score) of `scores` (one per item, index order; changed in place), without `exclude`."""
        excluded = self.item_ids.indices(list(exclude))
        scores[excluded[excluded >= 0]] = -np.inf
        return [(self.item_ids.ids[i], float(scores[i])) for i in best(scores, k)]


def best(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the (at most) k largest finite scores, best first (ties: the lower index)."""
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.lexsort((top, -scores[top]))]
