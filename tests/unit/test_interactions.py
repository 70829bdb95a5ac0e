"""Tests for the mock interaction generator and the MovieLens ratings reader."""
import csv
import re
from collections import Counter, defaultdict
from statistics import mean

import pytest

from seed.interactions import (
    CSV_FIELDS, generate_interactions, read_movielens_ratings, user_tastes, write_events_csv,
)
from seed.mock_catalog import generate_products
from tests.helpers import SHARED_DATA

NOW = 1_750_000_000.0
USERS = 500
MOVIELENS = SHARED_DATA / "movielens-latest-small"
EXPECTED_MIX = {"view": 0.60, "add_to_cart": 0.20, "purchase": 0.15, "rating": 0.05}  # the spec, not the module
USER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@pytest.fixture(scope="module")
def products():
    return list(generate_products(3000))


@pytest.fixture(scope="module")
def products_by_id(products):
    return {product["product_id"]: product for product in products}


@pytest.fixture(scope="module")
def events(products):
    return list(generate_interactions(products, USERS, now=NOW))


@pytest.fixture(scope="module")
def events_by_user(events):
    by_user = defaultdict(list)
    for event in events:
        by_user[event["user_id"]].append(event)
    return by_user


@pytest.fixture(scope="module")
def tastes(products):
    return user_tastes(products, USERS)


def test_same_seed_reproduces_and_other_seed_differs(products):
    first = list(generate_interactions(products, 20, seed=7, now=NOW))
    assert first == list(generate_interactions(products, 20, seed=7, now=NOW))
    other = list(generate_interactions(products, 20, seed=8, now=NOW))
    assert [e["product_id"] for e in first] != [e["product_id"] for e in other]


def test_user_does_not_depend_on_user_count(products):
    few = list(generate_interactions(products, 10, now=NOW))
    many = list(generate_interactions(products, 200, now=NOW))
    assert few == many[:len(few)]
    assert many[len(few)]["user_id"] == "u00011"
    assert user_tastes(products, 10) == dict(list(user_tastes(products, 200).items())[:10])


def test_every_user_has_between_min_and_max_events(products, events_by_user):
    assert list(events_by_user) == [f"u{n:05d}" for n in range(1, USERS + 1)]
    counts = [len(user_events) for user_events in events_by_user.values()]
    assert 15 <= min(counts) and max(counts) <= 100
    assert max(counts) - min(counts) > 50, "counts should spread over the range"
    exact = Counter(e["user_id"] for e in generate_interactions(products, 5, min_events=7, max_events=7, now=NOW))
    assert set(exact.values()) == {7}


def test_user_prefix_names_users(products):
    assert {e["user_id"] for e in generate_interactions(products, 2, user_prefix="shop:", now=NOW)} == {
        "shop:00001", "shop:00002"}


def test_only_active_products(events, products):
    inactive = {p["product_id"] for p in products if not p["active"]}
    assert inactive, "the sample should contain inactive products"
    assert not inactive & {e["product_id"] for e in events}


def test_event_mix(events):
    shares = Counter(e["event_type"] for e in events)
    assert set(shares) == set(EXPECTED_MIX)
    for event_type, share in EXPECTED_MIX.items():
        assert shares[event_type] / len(events) == pytest.approx(share, abs=0.02), event_type


def test_events_follow_user_taste(events, products_by_id, tastes):
    in_category = [products_by_id[e["product_id"]]["category"] in tastes[e["user_id"]].categories for e in events]
    assert 0.75 <= mean(in_category) <= 0.9
    in_brand = [products_by_id[e["product_id"]]["brand"] in tastes[e["user_id"]].brands for e in events]
    assert mean(in_brand) >= 0.3  # about half of the taste picks; a random brand would be ~3%


def test_tastes_are_small_and_consistent(tastes, products):
    brands_by_category = defaultdict(set)
    for product in products:
        if product["active"]:
            brands_by_category[product["category"]].add(product["brand"])
    for taste in tastes.values():
        assert 1 <= len(taste.categories) <= 3 and 1 <= len(taste.brands) <= 2
        assert len(set(taste.categories)) == len(taste.categories)
        for brand in taste.brands:
            assert any(brand in brands_by_category[category] for category in taste.categories)
    assert len({taste.categories for taste in tastes.values()}) > 50


def test_popular_products_are_picked_more(events, products_by_id, products):
    picked = mean(products_by_id[e["product_id"]]["sold_count"] for e in events)
    assert picked > 1.2 * mean(p["sold_count"] for p in products if p["active"])


def test_carts_and_purchases_follow_views_and_ratings_follow_purchases(events_by_user):
    followed = Counter()
    for user_events in events_by_user.values():
        viewed, purchased = set(), set()
        for event in user_events:
            kind, product = event["event_type"], event["product_id"]
            if kind in ("add_to_cart", "purchase", "rating"):
                followed[kind, product in (purchased if kind == "rating" else viewed)] += 1
            {"view": viewed, "purchase": purchased}.get(kind, set()).add(product)
    for kind in ("add_to_cart", "purchase", "rating"):
        assert followed[kind, True] / (followed[kind, True] + followed[kind, False]) >= 0.8, kind


def test_ratings(events, products_by_id, tastes):
    ratings = [e for e in events if e["event_type"] == "rating"]
    assert all(e["rating"] is None for e in events if e["event_type"] != "rating")
    assert {e["rating"] for e in ratings} == {1.0, 2.0, 3.0, 4.0, 5.0}
    liked = [e["rating"] for e in ratings if products_by_id[e["product_id"]]["category"] in tastes[e["user_id"]].categories]
    other = [e["rating"] for e in ratings if products_by_id[e["product_id"]]["category"] not in tastes[e["user_id"]].categories]
    assert mean(liked) >= 4.0 and mean(other) < 3.5


def test_timestamps_are_in_window_and_sorted_per_user(events_by_user, products):
    for user_events in events_by_user.values():
        timestamps = [e["timestamp"] for e in user_events]
        assert timestamps == sorted(timestamps)
        assert NOW - 90 * 86_400 <= timestamps[0] and timestamps[-1] <= NOW
    two_days = generate_interactions(products[:50], 3, days=2, now=NOW)
    assert all(NOW - 2 * 86_400 <= e["timestamp"] <= NOW for e in two_days)


def test_event_ids_are_unique_and_well_formed(events):
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert events[0]["event_id"] == "42-u00001-0"
    assert all(USER_ID.fullmatch(e["user_id"]) for e in events)


@pytest.mark.parametrize("overrides, message", [
    ({"products": []}, "no active products"),
    ({"products": [{"product_id": "X1", "category": "Home", "active": False}]}, "no active products"),
    ({"min_events": 20, "max_events": 10}, "must not exceed"),
    ({"min_events": 0}, "min_events"),
    ({"days": 0}, "days"),
    ({"users": -1}, "users"),
    ({"user_prefix": "bad prefix "}, "user_prefix"),
    ({"user_prefix": "x" * 60}, "user_prefix"),
])
def test_invalid_arguments_raise_at_call(products, overrides, message):
    arguments = {"products": products[:50], "users": 3, **overrides}
    with pytest.raises(ValueError, match=message):
        generate_interactions(**arguments)


def test_csv_round_trip(tmp_path, products):
    events = list(generate_interactions(products, 5, now=NOW))
    path = tmp_path / "events.csv"
    assert write_events_csv(events, path) == len(events)
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == CSV_FIELDS
        rows = list(reader)
    restored = [{**row, "rating": float(row["rating"]) if row["rating"] else None,
                 "timestamp": float(row["timestamp"])} for row in rows]
    assert restored == events


@pytest.mark.skipif(not (MOVIELENS / "ratings.csv").exists(), reason=f"MovieLens data not found at {MOVIELENS}")
def test_movielens_ratings():
    events = list(read_movielens_ratings(MOVIELENS))
    assert len(events) == 100_836
    assert events[0] == {"event_id": "ml-1-1", "user_id": "ml-u1", "product_id": "ml1", "event_type": "rating",
                         "rating": 4.0, "timestamp": 964982703.0}
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(re.fullmatch(r"ml-u\d+", e["user_id"]) and re.fullmatch(r"ml\d+", e["product_id"]) for e in events)
    ratings = [e["rating"] for e in events]
    assert min(ratings) == 1.0 and max(ratings) == 5.0
