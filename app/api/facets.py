"""GET /facets: the categories and brands of active products with their counts (for filter pickers)."""
from __future__ import annotations

import threading
import time

from flask import Blueprint, current_app

from app.storage.refine import FACET_FIELDS, value_counts
from app.api.requests import ResponseModel, operation
from app.core.resources import resources
from app.storage.products import ProductStore

bp = Blueprint("facets", __name__)

# Counting is a scan of the catalogue (seconds at 100k products on Milvus Lite), so each process reuses
# its last count for this long: a new category or brand shows up within a minute.
FACETS_MAX_AGE_SECONDS = 60
_refresh_lock = threading.Lock()


class FacetValue(ResponseModel):
    value: str
    count: int


class Facets(ResponseModel):
    categories: list[FacetValue]
    brands: list[FacetValue]


@bp.get("/facets")
@operation({200: Facets})
def facets():
    """Categories and brands of the active products with their counts (counted at most once a minute)."""
    cached = current_app.extensions.setdefault("facets", {})
    with _refresh_lock:
        if "body" not in cached or time.monotonic() - cached["counted_at"] >= FACETS_MAX_AGE_SECONDS:
            cached.update(body=count_facets(resources().products), counted_at=time.monotonic())
        return cached["body"]


def count_facets(products: ProductStore) -> dict:
    active = [row for row in products.scan(["category", "brand", "active"]) if row["active"]]
    return {
        plural: [{"value": value, "count": count} for value, count in sorted(value_counts(active, field).items())]
        for field, plural in FACET_FIELDS.items()
    }
