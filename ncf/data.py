"""Implicit-feedback interactions and item attributes: loaders, the leave-one-out split by time, negative sampling."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .mappings import IdMapping

MERGES = ("max", "sum")


@dataclass(frozen=True)
class Interactions:
    """One row per distinct (user, item) pair: indices, confidence weight and latest timestamp."""

    users: np.ndarray  # int64 user indices
    items: np.ndarray  # int64 item indices
    weights: np.ndarray  # float32 confidence weights (> 0)
    timestamps: np.ndarray  # float64 seconds since the epoch
    user_ids: IdMapping
    item_ids: IdMapping

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def subset(self, mask: np.ndarray) -> "Interactions":
        """The rows selected by a boolean mask or index array, with the same mappings."""
        return Interactions(self.users[mask], self.items[mask], self.weights[mask], self.timestamps[mask],
                            self.user_ids, self.item_ids)

    def pair_keys(self) -> np.ndarray:
        """Sorted int64 keys user * n_items + item, for fast membership tests (`contains_pairs`)."""
        return np.sort(self.users * self.n_items + self.items)


def from_records(user_ids: Sequence[str], item_ids: Sequence[str], weights: Sequence[float],
                 timestamps: Sequence[float], merge: str = "max") -> Interactions:
    """Interactions from parallel columns; rows of the same (user, item) pair are merged.

    The merged weight is the max or the sum of the rows' weights (`merge`), the timestamp the latest.
    Users and items are indexed in sorted order of their ids.
    """
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
    user_keys, users = np.unique(np.asarray(user_ids, dtype=str), return_inverse=True)
    item_keys, items = np.unique(np.asarray(item_ids, dtype=str), return_inverse=True)
    weights = np.asarray(weights, dtype=np.float64)
    timestamps = np.asarray(timestamps, dtype=np.float64)
    pairs, row_pair = np.unique(users.astype(np.int64) * len(item_keys) + items, return_inverse=True)
    merged_weights = np.zeros(len(pairs))
    if merge == "sum":
        np.add.at(merged_weights, row_pair, weights)
    else:
        np.maximum.at(merged_weights, row_pair, weights)
    latest = np.full(len(pairs), -np.inf)
    np.maximum.at(latest, row_pair, timestamps)
    return Interactions(pairs // len(item_keys), pairs % len(item_keys), merged_weights.astype(np.float32),
                        latest, IdMapping(user_keys.tolist()), IdMapping(item_keys.tolist()))


def from_movielens(path: str | Path) -> Interactions:
    """MovieLens `ratings.csv` (userId,movieId,rating,timestamp): every rating is a positive of weight 1.

    Ids follow the service: user `ml-u{userId}`, item `ml{movieId}`.
    """
    table = np.loadtxt(Path(path) / "ratings.csv", delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    users = [f"ml-u{user}" for user in table[:, 0].astype(np.int64)]
    items = [f"ml{movie}" for movie in table[:, 1].astype(np.int64)]
    return from_records(users, items, np.ones(len(table)), table[:, 3])


def movielens_genres(path: str | Path) -> dict[str, list[str]]:
    """Each movie's genres from MovieLens `movies.csv` (`|`-separated), as values `genre=...` by item id.

    "(no genres listed)" is no genre.
    """
    with open(Path(path) / "movies.csv", newline="", encoding="utf-8") as file:
        return {f"ml{row['movieId']}": [f"genre={genre}" for genre in row["genres"].split("|")
                                        if genre and genre != "(no genres listed)"]
                for row in csv.DictReader(file)}


# ---- leave-one-out split ------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeldOut:
    """One held-out item per user, its sampled negatives, and the items known before it."""

    users: np.ndarray  # (n,) user indices
    items: np.ndarray  # (n,) the held-out item of each user
    negatives: np.ndarray  # (n, num_negatives) items each user never touched
    known_users: np.ndarray  # (m,) with known_items: pairs excluded from full-catalogue ranking
    known_items: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Split:
    train: Interactions
    validation: HeldOut
    test: HeldOut


def leave_one_out(interactions: Interactions, num_negatives: int = 99, seed: int = 0) -> Split:
    """He et al. (2017): each user's latest interaction is the test item, the one before the validation item.

    Ties in time are broken by item index. Users with fewer than 3 interactions (or fewer than
    `num_negatives` untouched items) stay in training only. Negatives are drawn, without replacement,
    among the items the user never touched; the same `seed` gives the same split.
    """
    order = np.lexsort((interactions.items, interactions.timestamps, interactions.users))
    users = interactions.users[order]
    counts = np.bincount(users, minlength=interactions.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    from_end = counts[users] - 1 - (np.arange(len(users)) - starts[users])
    eligible = (counts >= 3) & (interactions.n_items - counts >= num_negatives)
    test_rows = order[(from_end == 0) & eligible[users]]
    validation_rows = order[(from_end == 1) & eligible[users]]
    train_mask = np.ones(len(interactions), dtype=bool)
    train_mask[test_rows] = False
    train_mask[validation_rows] = False
    train = interactions.subset(train_mask)

    touched = interactions.pair_keys()
    rng = np.random.default_rng(seed)
    known_before_test = np.concatenate((np.flatnonzero(train_mask), validation_rows))

    def held_out(rows: np.ndarray, known_rows: np.ndarray) -> HeldOut:
        held_users = interactions.users[rows]
        negatives = sample_distinct_negatives(held_users, touched, interactions.n_items, num_negatives, rng)
        return HeldOut(held_users, interactions.items[rows], negatives,
                       interactions.users[known_rows], interactions.items[known_rows])

    validation = held_out(validation_rows, np.flatnonzero(train_mask))
    return Split(train, validation, held_out(test_rows, known_before_test))


# ---- negative sampling --------------------------------------------------------------------------------

def contains_pairs(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of `keys` is in the sorted array `sorted_keys`."""
    if len(sorted_keys) == 0:
        return np.zeros(np.shape(keys), dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[positions] == keys


def sample_training_negatives(users: np.ndarray, positive_keys: np.ndarray, n_items: int, rng: np.random.Generator
                              ) -> np.ndarray:
    """One item per entry of `users`, uniform among the items that user has no positive for.

    `positive_keys` are the sorted keys user * n_items + item of the positives; vectorised rejection
    sampling (users who touched every item must not be passed).
    """
    items = rng.integers(0, n_items, size=len(users))
    redraw = np.flatnonzero(contains_pairs(positive_keys, users * n_items + items))
    while len(redraw):
        items[redraw] = rng.integers(0, n_items, size=len(redraw))
        redraw = redraw[contains_pairs(positive_keys, users[redraw] * n_items + items[redraw])]
    return items


def sample_distinct_negatives(users: np.ndarray, touched_keys: np.ndarray, n_items: int, count: int,
                              rng: np.random.Generator) -> np.ndarray:
    """(len(users), count) distinct items per user among those the user never touched (vectorised).

    Each user needs at least `count` untouched items.
    """
    negatives = np.empty((len(users), count), dtype=np.int64)
    pending = np.arange(len(users))
    draws = 2 * count + 16
    while len(pending):
        candidates = rng.integers(0, n_items, size=(len(pending), draws))
        valid = ~contains_pairs(touched_keys, users[pending, None] * n_items + candidates)
        order = np.argsort(candidates, axis=1, kind="stable")
        ordered = np.take_along_axis(candidates, order, axis=1)
        repeated_in_order = np.zeros_like(valid)
        repeated_in_order[:, 1:] = ordered[:, 1:] == ordered[:, :-1]  # not the first draw of that item
        repeated = np.empty_like(valid)
        np.put_along_axis(repeated, order, repeated_in_order, axis=1)
        valid &= ~repeated
        done = valid.sum(axis=1) >= count
        first_valid = np.argsort(~valid[done], axis=1, kind="stable")[:, :count]
        negatives[pending[done]] = np.take_along_axis(candidates[done], first_valid, axis=1)
        pending = pending[~done]
        draws *= 2
    return negatives
