"""Item-to-item collaborative neighbours: co-occurrence cosine over the users' interactions (item-kNN).

Two items are similar when the same users interacted with both: cos(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|).
Each item keeps its `neighbours` most similar items. A user's candidates are the neighbours of their most
recent items, an item's score the sum of its similarities to them (Sarwar et al. 2001; Deshpande & Karypis
2004): `score_recent` / `recommend_recent`, what serving asks with the user's latest events. Under the models'
contract (`score(users, items)`, `recommend(user_id)`) the user's items are those it was fit on. Saved beside
the NeuMF weights so that both swap together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

from .base import Recommender
from .data import Interactions
from .mappings import IdMapping, load_mappings, save_mappings

NEIGHBOURS = 200  # kept per item
ROWS_PER_BLOCK = 2048  # items whose similarity rows are computed at once (bounds memory)


class ItemKNN(Recommender):
    """Sparse (n_items × n_items) similarities, the top `neighbours` per row; the users' items it was fit on."""

    SIMILARITIES_FILE, USER_ITEMS_FILE, MAPPINGS_FILE = "item_knn.npz", "item_knn_users.npz", "mappings.json"

    def __init__(self, neighbours: int = NEIGHBOURS):
        self.neighbours = neighbours
        self.user_ids, self.item_ids = IdMapping([]), IdMapping([])
        self.similarities = sparse.csr_matrix((0, 0))
        self.user_items: sparse.csr_matrix | None = None  # None: loaded from a directory written without it

    def fit(self, interactions: Interactions) -> "ItemKNN":
        """Binary co-occurrence cosine of every item pair that shares a user; an item is not its own neighbour."""
        n_users, n_items = interactions.n_users, interactions.n_items
        matrix = sparse.csr_matrix((np.ones(len(interactions), np.float32), (interactions.users, interactions.items)),
                                   shape=(n_users, n_items))
        matrix.data[:] = 1.0  # a pair seen twice counts once
        neighbours = self.neighbours
        by_item = matrix.T.tocsr()
        norms = np.sqrt(np.asarray(by_item.sum(axis=1)).ravel()).astype(np.float32)
        inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        rows, cols, values = [], [], []
        for start in range(0, n_items, ROWS_PER_BLOCK):
            block = (by_item[start:start + ROWS_PER_BLOCK] @ matrix).toarray()
            block *= inverse[start:start + ROWS_PER_BLOCK, None] * inverse[None, :]
            block[np.arange(len(block)), np.arange(start, start + len(block))] = 0.0
            keep = min(neighbours, n_items - 1)
            if keep <= 0:
                continue
            top = np.argpartition(-block, keep - 1, axis=1)[:, :keep]
            top_values = np.take_along_axis(block, top, axis=1)
            present = top_values > 0
            rows.append(np.repeat(np.arange(start, start + len(block)), keep)[present.ravel()])
            cols.append(top[present])
            values.append(top_values[present])
        self.user_ids, self.item_ids, self.user_items = interactions.user_ids, interactions.item_ids, matrix
        self.similarities = sparse.csr_matrix(
            (np.concatenate(values) if values else np.empty(0, np.float32),
             (np.concatenate(rows) if rows else np.empty(0, np.int64),
              np.concatenate(cols) if cols else np.empty(0, np.int64))),
            shape=(n_items, n_items), dtype=np.float32)
        return self

    def _profile(self, recent: Sequence[str]) -> np.ndarray:
        """Summed similarity rows of the known `recent` items (dense, one value per item)."""
        known = self.item_ids.indices(list(recent))
        known = known[known >= 0]
        if not len(known):
            return np.zeros(len(self.item_ids), np.float32)
        return np.asarray(self.similarities[known].sum(axis=0)).ravel()

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Each item's summed similarity to the items its user was fit with."""
        if self.user_items is None:
            raise ValueError("this ItemKNN was saved without its users' items: it scores by recent items only")
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        unique, row = np.unique(users, return_inverse=True)
        profiles = (self.user_items[unique] @ self.similarities).tocsr()
        return np.asarray(profiles[row, items]).ravel().astype(np.float32)

    def score_recent(self, recent: Sequence[str], product_ids: Sequence[str]) -> np.ndarray:
        """Each product's summed similarity to the `recent` items (0: no shared users); NaN for unknown products."""
        profile = self._profile(recent)
        items = self.item_ids.indices(list(product_ids))
        return np.where(items >= 0, profile[np.maximum(items, 0)] if len(profile) else 0.0, np.nan)

    def similarities_to(self, recent: Sequence[str], product_ids: Sequence[str]) -> np.ndarray:
        """(known recent items, in order) × products: each pair's similarity (0 for none or an unknown product)."""
        known = self.item_ids.indices(list(recent))
        known = known[known >= 0]
        items = self.item_ids.indices(list(product_ids))
        rows = self.similarities[known].toarray() if len(known) else np.zeros((0, len(self.item_ids)), np.float32)
        return np.where(items[None, :] >= 0, rows[:, np.maximum(items, 0)], 0.0) if len(items) else rows[:, :0]

    def recommend_recent(self, recent: Sequence[str], k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The k items most similar to the `recent` ones (positive scores only), without `exclude`."""
        profile = self._profile(recent)
        excluded = self.item_ids.indices(list(exclude))
        profile[excluded[excluded >= 0]] = 0.0
        candidates = np.flatnonzero(profile > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-profile[candidates], k - 1)[:k]]
        candidates = candidates[np.lexsort((candidates, -profile[candidates]))]
        return [(self.item_ids.ids[i], float(profile[i])) for i in candidates]

    def save(self, directory: str | Path) -> Path:
        """item_knn.npz (similarities), item_knn_users.npz (the users' items) and the id mappings."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sparse.save_npz(directory / self.SIMILARITIES_FILE, self.similarities)
        if self.user_items is not None:
            sparse.save_npz(directory / self.USER_ITEMS_FILE, self.user_items)
        save_mappings(directory / self.MAPPINGS_FILE, self.user_ids, self.item_ids)  # in a model directory: the same
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "ItemKNN":
        directory = Path(directory)
        knn = cls()
        knn.user_ids, knn.item_ids = load_mappings(directory / cls.MAPPINGS_FILE)
        knn.similarities = sparse.load_npz(directory / cls.SIMILARITIES_FILE).tocsr()
        if (directory / cls.USER_ITEMS_FILE).is_file():
            knn.user_items = sparse.load_npz(directory / cls.USER_ITEMS_FILE).tocsr()
        return knn
