"""GET /search: hybrid (dense + sparse) product search with filters."""
from __future__ import annotations

import time
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ..catalog import Identifier
from ..milvus_filters import ProductFilter
from ..recommend import score_breakdown
from ..requests import query_args
from ..resources import resources
from ..store import SearchHit

bp = Blueprint("search", __name__)

FilterText = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class FilterParams(BaseModel):
    """Filters shared by search and similar-products calls."""

    model_config = ConfigDict(extra="forbid")

    category: FilterText | None = None
    brand: FilterText | None = None
    min_price: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    max_price: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    active: bool | None = True

    @field_validator("active", mode="before")
    @classmethod
    def _all_means_no_filter(cls, value):
        return None if value in ("all", "any") else value

    @field_validator("max_price")
    @classmethod
    def _price_range(cls, max_price, info):
        min_price = info.data.get("min_price")
        if max_price is not None and min_price is not None and min_price > max_price:
            raise ValueError("max_price must not be below min_price")
        return max_price

    def product_filter(self) -> ProductFilter:
        return ProductFilter(self.category, self.brand, self.min_price, self.max_price, self.active)


class SearchParams(FilterParams):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
    limit: int = Field(10, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1000)
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    dense_weight: float = Field(0.7, ge=0, le=1, allow_inf_nan=False)
    explain: bool = False
    user_id: Identifier | None = None


def hit_json(hit: SearchHit) -> dict:
    body = {**hit.product, "score": round(hit.score, 6)}
    if hit.retrievers is not None:
        body["retrievers"] = hit.retrievers
    return body


@bp.get("/search")
def search():
    params = query_args(SearchParams)
    started = time.perf_counter()
    res = resources()
    store = res.products
    dense_query = res.encoder.encode_query(params.q) if params.mode != "sparse" else None
    sparse_query = None
    if params.mode != "dense":
        sparse_query = res.encoder.encode_query_sparse(params.q) if store.learned_sparse else params.q
    window = max(res.settings.hybrid_candidates, params.offset + params.limit) if params.user_id else params.limit
    hits = store.search(
        dense_query, sparse_query, params.product_filter(), mode=params.mode, fusion=params.fusion,
        dense_weight=params.dense_weight, limit=window, offset=0 if params.user_id else params.offset,
        explain=params.explain,
    )
    body = {"query": params.q, "mode": params.mode, "fusion": params.fusion if params.mode == "hybrid" else None}
    if params.user_id and hits:
        order, blended, normalised, weights = res.recommender.rerank(  # ranks, not raw scores: see README
            params.user_id, [hit.product["product_id"] for hit in hits], [-rank for rank in range(len(hits))],
            res.settings.personalization_weights,
        )
        body["personalized"] = {"user_id": params.user_id, "weights": {k: round(v, 6) for k, v in weights.items()}}
        body["results"] = [
            {**hit_json(hits[i]), "score": round(float(blended[i]), 6), "scores": score_breakdown(normalised, i)}
            for i in order[params.offset:params.offset + params.limit]
        ]
    else:
        body["results"] = [hit_json(hit) for hit in hits]
    body["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return body
