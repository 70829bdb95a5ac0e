"""Simulated shoppers for the feedback loop: they search, look down the results with a position bias, and
click, add to cart or buy according to a hidden relevance that the service never reads.

Hidden relevance of a product for a query (a sub-category name, e.g. "vacuum cleaner") is 0 for another
sub-category and otherwise the product's hidden quality in [0, 1], fixed by a hash of (secret, product id):
nothing the catalogue or the retrievers know predicts it, only what shoppers do reveals it.
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

SECRET = "hidden-quality-v1"
POSITION_BIAS = 1.0  # P(a shopper looks at position p) = 1 / p ** POSITION_BIAS
PURCHASE_GIVEN_CLICK = 0.6  # times the relevance: P(buy | clicked)
MIN_PRODUCTS_PER_QUERY = 10


def quality(product_id: str) -> float:
    digest = hashlib.sha256(f"{SECRET}\x00{product_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def relevance(query: str, product: dict) -> float:
    """The hidden relevance in [0, 1]."""
    return quality(product["product_id"]) if product.get("sub_category") == query else 0.0


def shopper_queries(catalog: Sequence[dict]) -> list[str]:
    """The sub-categories with enough products to make a result page, sorted."""
    counts = Counter(product["sub_category"] for product in catalog)
    return sorted(name for name, count in counts.items() if count >= MIN_PRODUCTS_PER_QUERY)


@dataclass
class Shopper:
    user_id: str
    rng: random.Random

    def act(self, query: str, results: Sequence[dict], request_id: str) -> list[dict]:
        """The events of one look at a result page (views = clicks, carts and at most one purchase)."""
        events = []
        for item in results:
            position = item["position"]
            if self.rng.random() >= 1.0 / position ** POSITION_BIAS:
                continue  # not looked at
            hidden = relevance(query, item)
            if self.rng.random() >= hidden:
                continue
            attribution = {"request_id": request_id, "position": position}
            events.append(self._event(item, "view", attribution))
            if self.rng.random() < PURCHASE_GIVEN_CLICK * hidden:
                events += [self._event(item, "add_to_cart", attribution), self._event(item, "purchase", attribution)]
                break
        return events

    def _event(self, item: dict, event_type: str, attribution: dict) -> dict:
        return {"user_id": self.user_id, "product_id": item["product_id"], "event_type": event_type,
                "attribution": attribution}
