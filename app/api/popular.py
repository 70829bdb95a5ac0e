"""GET /popular and GET /popular/categories: time-decayed, event-weighted popularity."""
from __future__ import annotations

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from app.api.requests import ResponseModel, operation
from app.api.schemas import FilterText, StoredProduct
from app.core.resources import resources
from app.storage.milvus_filters import ProductFilter

bp = Blueprint("popular", __name__, url_prefix="/popular")


class PopularParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, ge=1, le=100)
    category: FilterText | None = None


class PopularCategoriesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, ge=1, le=100)


class PopularProduct(StoredProduct):
    popularity: float = Field(description="today's decayed, event-weighted popularity")


class PopularProducts(ResponseModel):
    results: list[PopularProduct]


class PopularCategory(ResponseModel):
    category: str
    popularity: float
    events: int


class PopularCategories(ResponseModel):
    results: list[PopularCategory]


@bp.get("")
@operation({200: PopularProducts}, query=PopularParams)
def popular_products(params: PopularParams):
    """The most popular active products, optionally of one category."""
    res = resources()
    products = res.recommender.popular(params.limit, ProductFilter(category=params.category, active=True))
    scores = res.events.popularity_of(list(products))
    return {"results": [{**product, "popularity": round(scores.get(pid, 0.0), 6)} for pid, product in products.items()]}


@bp.get("/categories")
@operation({200: PopularCategories}, query=PopularCategoriesParams)
def popular_categories(params: PopularCategoriesParams):
    """Categories by decayed popularity."""
    rows = resources().events.popular_categories(params.limit)
    return {"results": [{"category": category, "popularity": round(score, 6), "events": events}
                        for category, score, events in rows]}
