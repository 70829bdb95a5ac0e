"""Implicit-feedback interactions and item attributes: loaders, the leave-one-out split by time, negative sampling."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .mappings import IdMapping

MERGES = ("max", "sum")
PRODUCT_ATTRIBUTES = ("category", "sub_category", "brand")  # item features of the event-store source


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


def from_event_store(database_url: str | None = None, event_weights: Mapping[str, float] | None = None,
                     merge: str = "max", max_row_id: int | None = None) -> Interactions:
    """The service's SQL `events` (rows up to `max_row_id`, if given); an event weighs its type's weight.

    Defaults come from the service settings (`Settings.from_env()`): its database and `event_weights`.
    Events whose type has no positive weight are ignored.
    """
    from sqlalchemy import select

    from app.storage.events import events, make_engine
    from app.config.settings import Settings

    if database_url is None or event_weights is None:
        settings = Settings.from_env()
        database_url = database_url or settings.resolved_database_url
        event_weights = settings.event_weights if event_weights is None else event_weights
    query = select(events.c.user_id, events.c.product_id, events.c.event_type, events.c.occurred_at)
    if max_row_id is not None:
        query = query.where(events.c.id <= max_row_id)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        engine.dispose()
    rows = [row for row in rows if event_weights.get(row.event_type, 0.0) > 0]
    if not rows:
        raise ValueError("the event store has no weighted events to train on")
    return from_records([row.user_id for row in rows], [row.product_id for row in rows],
                        [event_weights[row.event_type] for row in rows], [row.occurred_at for row in rows],
                        merge=merge)


def movielens_genres(path: str | Path) -> dict[str, list[str]]:
    """Each movie's genres from MovieLens `movies.csv` (`|`-separated), as values `genre=...` by item id.

    "(no genres listed)" is no genre.
    """
    with open(Path(path) / "movies.csv", newline="", encoding="utf-8") as file:
        return {f"ml{row['movieId']}": [f"genre={genre}" for genre in row["genres"].split("|")
                                        if genre and genre != "(no genres listed)"]
                for row in csv.DictReader(file)}


def product_attributes(settings=None) -> dict[str, list[str]]:
    """Each product's PRODUCT_ATTRIBUTES from the Milvus products collection, as values `field=...` by id.

    The store is the service's (`Settings.from_env()`: MILVUS_URI, or Milvus Lite under DATA_DIR); empty
    values are left out; {} when the collection does not exist.
    """
    from app.config.settings import Settings
    from app.storage.products import ProductStore, connect

    settings = settings or Settings.from_env()
    client = connect(settings)
    try:  # closed at once: an idle client would keep the connection (and its keepalive pings) during training
        store = ProductStore(client, settings, dimension=0)  # only scanned: the vector dimension is not used
        if not client.has_collection(store.collection):
            return {}
        rows = store.scan(["product_id", *PRODUCT_ATTRIBUTES])
    finally:
        client.close()
    return {row["product_id"]: [f"{field}={row[field]}" for field in PRODUCT_ATTRIBUTES if row.get(field)]
            for row in rows}


def latest_event_row(database_url: str) -> int:
    """The highest row id of the `events` table (0 when empty): pins the events a model was trained on."""
    from sqlalchemy import func, select

    from app.storage.events import events, make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())
    finally:
        engine.dispose()


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
