"""GET /search: hybrid (dense + sparse) product search with filters."""
from __future__ import annotations

import time
from flask import Blueprint
from pydantic import Field

from app.api.requests import ResponseModel, operation
from app.api.schemas import AttributedList, Fusion, ProductHit, SearchMode, SearchParams, hit_json
from app.core.recommend import score_breakdown
from app.core.resources import resources

bp = Blueprint("search", __name__)

class FacetCount(ResponseModel):
    value: str
    count: int


class PriceBucket(ResponseModel):
    min: float
    max: float | None = Field(description="null: no upper bound")
    count: int


class SearchFacets(ResponseModel):
    categories: list[FacetCount]
    brands: list[FacetCount]
    price: list[PriceBucket]


class Personalization(ResponseModel):
    user_id: str
    weights: dict[str, float]


class SearchResponse(AttributedList):
    query: str
    mode: SearchMode
    fusion: Fusion | None
    personalized: Personalization | None = None
    results: list[ProductHit]
    facets: SearchFacets | None = None
    took_ms: float


def personalization_weights(weights: dict[str, float], ranker: bool) -> dict[str, float]:
    """The personalised blend's weights. The ranker's order already weighs popularity (one of its features,
    weighed by what shoppers did): blending popularity in again would undo what it learnt, so with the
    ranker the blend is its order and the collaborative score."""
    return {source: weight for source, weight in weights.items() if not (ranker and source == "popular")}


@bp.get("/search")
@operation({200: SearchResponse}, query=SearchParams)
def search(params: SearchParams):
    """Hybrid, dense or sparse product search with filters, optionally personalised."""
    started = time.perf_counter()
    res = resources()
    assignment = res.experiments.assignment("search", params.user_id)  # cached: no database round trip
    if assignment:
        params = params.model_copy(update=assignment.params)
    params = params.model_copy(update={"fusion": params.fusion or res.settings.fusion})
    store = res.products
    dense_query = res.encoder.encode_query(params.q) if params.mode != "sparse" else None
    sparse_query = None
    if params.mode != "dense":
        sparse_query = res.encoder.encode_query_sparse(params.q) if store.learned_sparse else params.q
    whole_window = bool(params.user_id or params.ranker)
    window = max(res.settings.hybrid_candidates, params.offset + params.limit) if whole_window else params.limit
    found = store.search(
        dense_query, sparse_query, params.product_filter(), mode=params.mode, fusion=params.fusion,
        dense_weight=params.dense_weight, limit=window, offset=0 if whole_window else params.offset,
        explain=params.explain, sort=params.sort, facets=params.facets,
    )
    hits = found.hits
    if params.ranker:
        hits = res.ranker.rerank(params.q, hits, res.events.popularity_of)
        hits = hits if params.user_id else hits[params.offset:params.offset + params.limit]
    body = {"query": params.q, "mode": params.mode, "fusion": params.fusion if params.mode == "hybrid" else None}
    if found.facets is not None:
        body["facets"] = found.facets
    if params.user_id and hits:
        order, blended, normalised, weights = res.recommender.rerank(  # ranks, not raw scores: see README
            params.user_id, [hit.product["product_id"] for hit in hits], [-rank for rank in range(len(hits))],
            personalization_weights(res.settings.personalization_weights, params.ranker),
        )
        body["personalized"] = {"user_id": params.user_id, "weights": {k: round(v, 6) for k, v in weights.items()}}
        body["results"] = [
            {**hit_json(hits[i]), "score": round(float(blended[i]), 6), "scores": score_breakdown(normalised, i)}
            for i in order[params.offset:params.offset + params.limit]
        ]
    else:
        body["results"] = [hit_json(hit) for hit in hits]
    served = {"q": params.q, "mode": params.mode, "fusion": params.fusion, "dense_weight": params.dense_weight,
              "ranker": params.ranker}
    body.update(res.impressions.present("search", params.user_id, body["results"], served, assignment))
    body["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return body
