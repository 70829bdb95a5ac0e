"""Refining a search's matched set: the orders `sort=` offers and the facet counts `facets=true` returns."""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Literal

Sort = Literal["relevance", "price_asc", "price_desc", "rating", "newest"]
# sort → (field, descending); "relevance" keeps the fused order
SORT_KEYS = {"price_asc": ("price", False), "price_desc": ("price", True), "rating": ("rating", True),
             "newest": ("created_at", True)}
FACET_FIELDS = {"category": "categories", "brand": "brands"}
# Lower edges of the price buckets; the last bucket is open-ended.
PRICE_EDGES = (0, 10, 25, 50, 100, 250, 500, 1000)
REFINE_FIELDS = ("price", "rating", "created_at", *FACET_FIELDS)  # what sorting and counting read


def sort_matches(matches: list[tuple[str, float]], attributes: dict[str, dict], sort: Sort) -> list[tuple[str, float]]:
    """`matches` (best first) reordered by `sort`; ties keep their relevance order (a stable sort)."""
    if sort == "relevance":
        return matches
    field, descending = SORT_KEYS[sort]
    sign = -1 if descending else 1
    return sorted(matches, key=lambda match: sign * attributes[match[0]][field])


def value_counts(rows: Iterable[dict], field: str) -> Counter:
    """How many rows carry each non-empty value of `field`."""
    return Counter(row[field] for row in rows if row[field])


def facet_counts(rows: list[dict]) -> dict:
    """Category, brand (most frequent first) and price-bucket counts of `rows`."""
    body = {
        plural: [{"value": value, "count": count}
                 for value, count in sorted(value_counts(rows, field).items(), key=lambda item: (-item[1], item[0]))]
        for field, plural in FACET_FIELDS.items()
    }
    buckets = Counter(_price_bucket(row["price"]) for row in rows)
    body["price"] = [
        {"min": low, "max": high, "count": buckets[i]}
        for i, (low, high) in enumerate(zip(PRICE_EDGES, (*PRICE_EDGES[1:], None))) if buckets[i]
    ]
    return body


def _price_bucket(price: float) -> int:
    return max(i for i, edge in enumerate(PRICE_EDGES) if price >= edge)
