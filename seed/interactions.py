"""Deterministic mock user interactions (views, carts, purchases, ratings) and MovieLens ratings as events.

User ``n`` is drawn from its own RNG (``random.Random(f"{seed}:{n}")``): first their taste (``user_tastes``),
then their events, so a user is the same whatever the number of users is.
"""
from __future__ import annotations

import bisect
import csv
import itertools
import math
import random
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Generic, Iterable, Iterator, NamedTuple, Sequence, TypeVar

EVENT_MIX = {"view": 0.60, "add_to_cart": 0.20, "purchase": 0.15, "rating": 0.05}
TASTE_SHARE = 0.80  # events with a product in one of the user's favourite categories (the rest: any product)
FAVOURITE_BRAND_SHARE = 0.50  # of the taste picks, those from the user's favourite brands (when available)
FUNNEL_SHARE = 0.90  # carts and purchases of a product the user viewed earlier (once there is one)
FAVOURITE_CATEGORIES = (1, 3)
FAVOURITE_BRANDS = (1, 2)
RATING_WEIGHTS_IN_TASTE = (0.02, 0.03, 0.10, 0.35, 0.50)  # P(1..5 stars), favourite category
RATING_WEIGHTS_OTHER = (0.15, 0.20, 0.30, 0.20, 0.15)
STARS = (1.0, 2.0, 3.0, 4.0, 5.0)
SECONDS_PER_DAY = 86_400
USER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
CSV_FIELDS = ("event_id", "user_id", "product_id", "event_type", "rating", "timestamp")
MOVIELENS_MIN_RATING = 1.0

T = TypeVar("T")


class Taste(NamedTuple):
    """A user's favourite categories and brands (brands sold in those categories)."""

    categories: tuple[str, ...]
    brands: tuple[str, ...]


class WeightedPicker(Generic[T]):
    """Pick items with probability proportional to their weight (bisect over cumulative weights)."""

    def __init__(self, items: Sequence[T], weights: Iterable[float]):
        self.items = items
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1] if self.cumulative else 0.0

    def pick(self, rng: random.Random) -> T:
        # hi guards against random() * total rounding up to total, as random.choices does
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total, 0, len(self.items) - 1)]


EVENT_TYPES = WeightedPicker(tuple(EVENT_MIX), EVENT_MIX.values())


def user_tastes(products: Iterable[dict], users: int, seed: int = 42, user_prefix: str = "u") -> dict[str, Taste]:
    """Each user's taste, by user id, exactly as ``generate_interactions`` draws it for the same arguments."""
    brands_by_category = _brands_by_category(_active_products(products))
    return {_user_id(user_prefix, n): _draw_taste(_user_rng(seed, n), brands_by_category) for n in range(1, users + 1)}


def generate_interactions(
    products: list[dict],
    users: int,
    min_events: int = 15,
    max_events: int = 100,
    days: int = 90,
    seed: int = 42,
    now: float | None = None,
    user_prefix: str = "u",
) -> Iterator[dict]:
    """Yield events of users ``f"{user_prefix}{n:05d}"`` (n = 1..users), sorted by time per user.

    Raises ValueError at call time on no active products or out-of-range arguments.
    """
    _check_arguments(users, min_events, max_events, days, user_prefix)
    active = _active_products(products)
    if not active:
        raise ValueError("no active products to interact with")
    end = time.time() if now is None else now
    catalogue = _Catalogue(active)
    return (
        event
        for n in range(1, users + 1)
        for event in _user_events(catalogue, n, (min_events, max_events), (end - days * SECONDS_PER_DAY, end),
                                  seed, user_prefix)
    )


def write_events_csv(events: Iterable[dict], path: str | Path) -> int:
    """Write events as CSV (header ``CSV_FIELDS``, empty rating when None); return the number of rows."""
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_FIELDS)
        for event in events:
            writer.writerow(["" if event[field] is None else event[field] for field in CSV_FIELDS])
            rows += 1
    return rows


def read_movielens_ratings(directory: str | Path) -> Iterator[dict]:
    """Yield MovieLens ``ratings.csv`` rows as ``rating`` events (ratings below 1.0 raised to 1.0)."""
    with open(Path(directory) / "ratings.csv", newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            user, movie = row["userId"], row["movieId"]
            yield {
                "event_id": f"ml-{user}-{movie}",
                "user_id": f"ml-u{user}",
                "product_id": f"ml{movie}",
                "event_type": "rating",
                "rating": max(MOVIELENS_MIN_RATING, float(row["rating"])),
                "timestamp": float(row["timestamp"]),
            }


# --- users and their tastes ----------------------------------------------------------------------------


def _check_arguments(users: int, min_events: int, max_events: int, days: int, user_prefix: str) -> None:
    if users < 0:
        raise ValueError(f"users must be >= 0, got {users}")
    if min_events < 1:
        raise ValueError(f"min_events must be >= 1, got {min_events}")
    if min_events > max_events:
        raise ValueError(f"min_events ({min_events}) must not exceed max_events ({max_events})")
    if days <= 0:
        raise ValueError(f"days must be > 0, got {days}")
    longest_id = _user_id(user_prefix, max(users, 1))
    if not USER_ID.fullmatch(longest_id):
        raise ValueError(f"user_prefix {user_prefix!r} makes invalid user ids such as {longest_id!r}: "
                         "1..64 characters of [A-Za-z0-9_.:-]")


def _active_products(products: Iterable[dict]) -> list[dict]:
    return [product for product in products if product.get("active", True)]


def _brands_by_category(active: Iterable[dict]) -> dict[str, list[str]]:
    """Sorted non-empty brands per category, categories in sorted order (so draws are deterministic)."""
    brands: dict[str, set[str]] = defaultdict(set)
    for product in active:
        brands[product["category"]].update(filter(None, [product.get("brand")]))
    return {category: sorted(brands[category]) for category in sorted(brands)}


def _user_id(user_prefix: str, n: int) -> str:
    return f"{user_prefix}{n:05d}"


def _user_rng(seed: int, n: int) -> random.Random:
    return random.Random(f"{seed}:{n}")


def _draw_taste(rng: random.Random, brands_by_category: dict[str, list[str]]) -> Taste:
    categories = list(brands_by_category)
    favourite_categories = rng.sample(categories, min(rng.randint(*FAVOURITE_CATEGORIES), len(categories)))
    brands = sorted({brand for category in favourite_categories for brand in brands_by_category[category]})
    favourite_brands = rng.sample(brands, min(rng.randint(*FAVOURITE_BRANDS), len(brands)))
    return Taste(tuple(favourite_categories), tuple(favourite_brands))


# --- events ------------------------------------------------------------------------------------------------


class _TastePools(NamedTuple):
    """Pickers of popularity pools for one taste; each pool is chosen in proportion to its total weight."""

    favourite_brands: WeightedPicker[WeightedPicker[dict]] | None  # None when no favourite-brand products
    favourite_categories: WeightedPicker[WeightedPicker[dict]]


class _Catalogue:
    """Active products in popularity-weighted pools: all, per category, per (category, brand)."""

    def __init__(self, active: list[dict]):
        by_category: dict[str, list[dict]] = defaultdict(list)
        by_category_brand: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for product in active:
            by_category[product["category"]].append(product)
            by_category_brand[product["category"], product.get("brand")].append(product)
        self.brands_by_category = _brands_by_category(active)
        self.everything = _popularity_picker(active)
        self.category_pools = {key: _popularity_picker(pool) for key, pool in by_category.items()}
        self.brand_pools = {key: _popularity_picker(pool) for key, pool in by_category_brand.items()}

    def taste_pools(self, taste: Taste) -> _TastePools:
        """The pools a user's taste picks from."""
        brand_pools = [self.brand_pools[key] for key in itertools.product(taste.categories, taste.brands)
                       if key in self.brand_pools]
        category_pools = [self.category_pools[category] for category in taste.categories]
        return _TastePools(_pool_picker(brand_pools) if brand_pools else None, _pool_picker(category_pools))


def _pool_picker(pools: list[WeightedPicker[dict]]) -> WeightedPicker[WeightedPicker[dict]]:
    return WeightedPicker(pools, (pool.total for pool in pools))


def _popularity_picker(products: list[dict]) -> WeightedPicker[dict]:
    return WeightedPicker(products, (1.0 + math.log1p(max(0, product.get("sold_count", 0))) for product in products))


class _UserHistory:
    """What the user did so far, to make later events follow a view -> cart/purchase -> rating funnel."""

    def __init__(self):
        self.viewed: list[dict] = []
        self.unrated_purchases: list[dict] = []

    def record(self, event_type: str, product: dict) -> None:
        if event_type == "view":
            self.viewed.append(product)
        elif event_type == "purchase":
            self.unrated_purchases.append(product)


def _user_events(catalogue: _Catalogue, n: int, event_range: tuple[int, int], window: tuple[float, float],
                 seed: int, user_prefix: str) -> Iterator[dict]:
    rng = _user_rng(seed, n)
    taste = _draw_taste(rng, catalogue.brands_by_category)
    taste_pools = catalogue.taste_pools(taste)
    user_id = _user_id(user_prefix, n)
    history = _UserHistory()
    count = rng.randint(*event_range)
    timestamps = sorted(rng.uniform(*window) for _ in range(count))
    for index, timestamp in enumerate(timestamps):
        event_type = EVENT_TYPES.pick(rng)
        product = _pick_product(rng, event_type, history, catalogue, taste_pools)
        history.record(event_type, product)
        rating = _draw_rating(rng, product["category"] in taste.categories) if event_type == "rating" else None
        yield {"event_id": f"{seed}-{user_id}-{index}", "user_id": user_id, "product_id": product["product_id"],
               "event_type": event_type, "rating": rating, "timestamp": timestamp}


def _pick_product(rng: random.Random, event_type: str, history: _UserHistory, catalogue: _Catalogue,
                  taste_pools: _TastePools) -> dict:
    """A rated product was bought, a carted or bought one mostly viewed; otherwise a fresh pick."""
    if event_type == "rating" and history.unrated_purchases:
        return history.unrated_purchases.pop(rng.randrange(len(history.unrated_purchases)))
    if event_type in ("add_to_cart", "purchase") and history.viewed and rng.random() < FUNNEL_SHARE:
        return rng.choice(history.viewed)
    if rng.random() >= TASTE_SHARE:
        return catalogue.everything.pick(rng)
    if taste_pools.favourite_brands and rng.random() < FAVOURITE_BRAND_SHARE:
        return taste_pools.favourite_brands.pick(rng).pick(rng)
    return taste_pools.favourite_categories.pick(rng).pick(rng)


def _draw_rating(rng: random.Random, in_taste: bool) -> float:
    return rng.choices(STARS, RATING_WEIGHTS_IN_TASTE if in_taste else RATING_WEIGHTS_OTHER)[0]
