"""GET /facets: the categories and brands of active products with their counts (for filter pickers)."""
from __future__ import annotations

from flask import Blueprint

from app.api.requests import ResponseModel, operation
from app.core.resources import resources

bp = Blueprint("facets", __name__)


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
    return resources().facets.counts()
