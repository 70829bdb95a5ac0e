"""Item-to-item collaborative neighbours from the users' interaction sequences (sequential item-kNN).

Two items are similar when the same users interacted with both *close together in time*: each user's
interactions, in time order, pair every item with the next `window` ones, a pair `d` positions apart counting
exp(-d / `distance_scale`) (both directions); an item pair's similarity is that sum over users, normalised as a
cosine: sim(i, j) = C(i, j) / sqrt(|U_i| |U_j|) (session-kNN, Ludewig & Jannach 2018; co-occurrence cosine:
Sarwar et al. 2001). Each item keeps its `neighbours` most similar items (bounded memory at any catalogue size).
A user's candidates are the neighbours of their most recent items, an item's score its similarities to them
weighted by recency, decay^t for the t-th newest (t = 0 the newest): `score_recent` / `recommend_recent`,
what serving asks with the user's latest events. Under the models' contract (`score(users, items)`,
`recommend(user_id)`) the user's items are those it was fit on, unweighted. Saved beside the NeuMF weights so
that both swap together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

from .base import Recommender
from .data import Interactions
from .mappings import IdMapping, load_mappings, save_mappings

NEIGHBOURS = 500  # kept per item
WINDOW = 60  # later items of a user's sequence each item is paired with
DISTANCE_SCALE = 20.0  # a pair d positions apart counts exp(-d / DISTANCE_SCALE)
DECAY = 0.7  # the t-th most recent item's weight is DECAY ** t (RECOMMENDATION_RECENT_DECAY's default)


class ItemKNN(Recommender):
    """Sparse (n_items × n_items) similarities, the top `neighbours` per row; the users' items it was fit on."""

    SIMILARITIES_FILE, USER_ITEMS_FILE, MAPPINGS_FILE = "item_knn.npz", "item_knn_users.npz", "mappings.json"

    def __init__(self, neighbours: int = NEIGHBOURS, window: int = WINDOW, distance_scale: float = DISTANCE_SCALE):
        self.neighbours, self.window, self.distance_scale = neighbours, window, distance_scale
        self.user_ids, self.item_ids = IdMapping([]), IdMapping([])
        self.similarities = sparse.csr_matrix((0, 0))
        self.user_items: sparse.csr_matrix | None = None  # None: loaded from a directory written without it

    def fit(self, interactions: Interactions) -> "ItemKNN":
        """Distance-weighted co-occurrence within each user's time-ordered items (ties: item index), normalised
        by sqrt(|U_i| |U_j|); an item is not its own neighbour."""
        n_users, n_items = interactions.n_users, interactions.n_items
        matrix = sparse.csr_matrix((np.ones(len(interactions), np.float32), (interactions.users, interactions.items)),
                                   shape=(n_users, n_items))
        matrix.data[:] = 1.0  # a pair seen twice counts once
        order = np.lexsort((interactions.items, interactions.timestamps, interactions.users))
        users, items = interactions.users[order], interactions.items[order]
        earlier, later, weights = [], [], []
        for distance in range(1, self.window + 1):
            same = users[:-distance] == users[distance:]
            if not same.any():
                break
            earlier.append(items[:-distance][same]), later.append(items[distance:][same])
            weights.append(np.full(same.sum(), np.exp(-distance / self.distance_scale), np.float32))
        pairs = [np.concatenate(part) if part else np.empty(0, dtype) for part, dtype in
                 ((weights, np.float32), (earlier, np.int64), (later, np.int64))]
        cooccurrence = sparse.coo_matrix((pairs[0], (pairs[1], pairs[2])), shape=(n_items, n_items)).tocsr()  # sums
        cooccurrence = (cooccurrence + cooccurrence.T).tocsr()
        cooccurrence = (cooccurrence - sparse.diags(cooccurrence.diagonal())).tocsr()  # not its own neighbour
        cooccurrence.eliminate_zeros()
        norms = np.sqrt(np.asarray(matrix.sum(axis=0)).ravel()).astype(np.float32)
        inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        similarities = sparse.diags(inverse) @ cooccurrence @ sparse.diags(inverse)
        self.user_ids, self.item_ids, self.user_items = interactions.user_ids, interactions.item_ids, matrix
        self.similarities = _top_per_row(similarities.tocsr(), self.neighbours)
        return self

    def _profile(self, recent: Sequence[str], decay: float) -> np.ndarray:
        """Similarity rows of the known `recent` items (newest first), the t-th weighted decay ** t (dense)."""
        known = self.item_ids.indices(list(recent))
        weights = decay ** np.arange(len(known), dtype=np.float64)
        known, weights = known[known >= 0], weights[known >= 0]
        if not len(known):
            return np.zeros(len(self.item_ids), np.float32)
        return np.asarray(self.similarities[known].T @ weights.astype(np.float32)).ravel()

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Each item's summed similarity to the items its user was fit with."""
        if self.user_items is None:
            raise ValueError("this ItemKNN was saved without its users' items: it scores by recent items only")
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        unique, row = np.unique(users, return_inverse=True)
        profiles = (self.user_items[unique] @ self.similarities).tocsr()
        return np.asarray(profiles[row, items]).ravel().astype(np.float32)

    def score_recent(self, recent: Sequence[str], product_ids: Sequence[str], decay: float = DECAY) -> np.ndarray:
        """Each product's recency-weighted similarity to the `recent` items, newest first (0: none); NaN for
        unknown products."""
        profile = self._profile(recent, decay)
        items = self.item_ids.indices(list(product_ids))
        return np.where(items >= 0, profile[np.maximum(items, 0)] if len(profile) else 0.0, np.nan)

    def similarities_to(self, recent: Sequence[str], product_ids: Sequence[str]) -> np.ndarray:
        """(known recent items, in order) × products: each pair's similarity (0 for none or an unknown product)."""
        known = self.item_ids.indices(list(recent))
        known = known[known >= 0]
        items = self.item_ids.indices(list(product_ids))
        rows = self.similarities[known].toarray() if len(known) else np.zeros((0, len(self.item_ids)), np.float32)
        return np.where(items[None, :] >= 0, rows[:, np.maximum(items, 0)], 0.0) if len(items) else rows[:, :0]

    def recommend_recent(self, recent: Sequence[str], k: int, exclude: Iterable[str] = (), decay: float = DECAY
                         ) -> list[tuple[str, float]]:
        """The k items most similar to the `recent` ones, newest first, weighted by recency (positive scores
        only), without `exclude`."""
        profile = self._profile(recent, decay)
        return self.top(np.where(profile > 0, profile, -np.inf), k, exclude)

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


def _top_per_row(matrix: sparse.csr_matrix, keep: int) -> sparse.csr_matrix:
    """Each row's `keep` largest positive values (ties: the lower column), the others dropped."""
    rows, cols, values = [], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        row_values, row_cols = matrix.data[start:end], matrix.indices[start:end]
        chosen = np.lexsort((row_cols, -row_values))[:keep]
        chosen = chosen[row_values[chosen] > 0]
        rows.append(np.full(len(chosen), row)), cols.append(row_cols[chosen]), values.append(row_values[chosen])
    concatenated = [np.concatenate(part) if part else np.empty(0) for part in (values, rows, cols)]
    return sparse.csr_matrix((concatenated[0].astype(np.float32), (concatenated[1], concatenated[2])),
                             shape=matrix.shape)
