"""Recommendations: content (Milvus search with the user vector), collaborative (NCF, when a model is
served) and popularity, blended over a union of candidates with per-source scores normalised to [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from .events import EventStore
from .milvus_filters import ProductFilter
from .store import DENSE_FIELD, ProductStore
from .users import UserVectorStore
from .weights import effective_weights

SOURCES = ("content", "collaborative", "popular")
DEFAULT_WEIGHTS = {"content": 0.5, "collaborative": 0.4, "popular": 0.1}
POPULAR_PAGE = 200


class CollaborativeScorer(Protocol):
    """Scores (user, candidate products); None for a user it does not know, NaN for unknown products."""

    def score(self, user_id: str, product_ids: Sequence[str]) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Recommendation:
    product: dict
    score: float
    scores: dict[str, float | None]


@dataclass(frozen=True)
class Recommendations:
    strategy: str  # the strategy actually used
    cold_start: bool
    weights: dict[str, float]  # effective weights (renormalised over the sources available)
    items: list[Recommendation]


class Recommender:
    def __init__(self, products: ProductStore, users: UserVectorStore, events: EventStore, candidates: int,
                 collaborative: CollaborativeScorer | None = None):
        self.products = products
        self.users = users
        self.events = events
        self.candidates = candidates
        self.collaborative = collaborative

    def recommend(self, user_id: str, strategy: str = "hybrid", limit: int = 10, category: str | None = None,
                  exclude_purchased: bool = True, weights: dict[str, float] | None = None) -> Recommendations:
        user = self.users.get([user_id]).get(user_id)
        excluded = tuple(sorted(self.events.purchased_products(user_id))) if exclude_purchased else ()
        product_filter = ProductFilter(category=category, active=True, exclude_ids=excluded)
        if user is None or strategy == "popular" or not np.any(user.vector):
            candidates = self.popular(limit, product_filter)
            return self._ranked(user_id, None, candidates, {"popular": 1.0}, "popular", user is None, limit)
        query = _unit(user.vector)
        content = self.products.nearest(query, limit if strategy == "content" else self.candidates, product_filter)
        candidates = {hit.product["product_id"]: hit.product for hit in content}
        similarity = {hit.product["product_id"]: hit.score for hit in content}  # cosine: unit query, unit products
        if strategy == "content":
            return self._ranked(user_id, query, candidates, {"content": 1.0}, "content", False, limit, similarity)
        for product_id, product in self.popular(self.candidates, product_filter).items():
            candidates.setdefault(product_id, product)
        if strategy == "ncf" and self._model_knows(user_id):
            return self._ranked(user_id, query, candidates, {"collaborative": 1.0}, "ncf", False, limit, similarity)
        return self._ranked(user_id, query, candidates, weights or DEFAULT_WEIGHTS, "hybrid", False, limit,
                            similarity)

    def _model_knows(self, user_id: str) -> bool:
        """Whether a collaborative model is served and was trained with this user."""
        return self.collaborative is not None and self.collaborative.score(user_id, []) is not None

    def popular(self, limit: int, product_filter: ProductFilter) -> dict[str, dict]:
        """The most popular active products passing the filter, most popular first."""
        chosen: dict[str, dict] = {}
        excluded = set(product_filter.exclude_ids)
        offset = 0
        while len(chosen) < limit:
            page = self.events.popular_products(POPULAR_PAGE, offset, product_filter.category)
            wanted = [product_id for product_id, _ in page if product_id not in excluded]
            found = self.products.get(wanted)
            for product_id in wanted:
                product = found.get(product_id)
                if product and product["active"] and len(chosen) < limit:
                    chosen[product_id] = product
            if len(page) < POPULAR_PAGE:
                break
            offset += POPULAR_PAGE
        return chosen

    def score(self, user_id: str, query: np.ndarray | None, product_ids: Sequence[str],
              known_similarity: dict[str, float] | None = None) -> dict[str, np.ndarray | None]:
        """Raw per-source scores of a candidate set (None: source unavailable for this user).

        `known_similarity` holds content scores already computed (by the Milvus search); only the other
        candidates' vectors are fetched.
        """
        scores: dict[str, np.ndarray | None] = dict.fromkeys(SOURCES)
        if query is not None:
            similarity = dict(known_similarity or {})
            missing = [pid for pid in product_ids if pid not in similarity]
            for pid, product in (self.products.get(missing, with_vectors=True) if missing else {}).items():
                similarity[pid] = float(product[DENSE_FIELD] @ query)
            scores["content"] = np.array([similarity.get(pid, np.nan) for pid in product_ids])
        popularity = self.events.popularity_of(product_ids)
        scores["popular"] = np.array([popularity.get(pid, 0.0) for pid in product_ids])
        if self.collaborative is not None:
            scores["collaborative"] = self.collaborative.score(user_id, product_ids)
        return scores

    def rerank(self, user_id: str, ranked_ids: Sequence[str], search_scores: Sequence[float],
               weights: dict[str, float]) -> tuple[list[int], np.ndarray, dict[str, np.ndarray | None], dict]:
        """Personalised order of search results: their search scores blended with collaborative and popular
        scores. Returns (new order as positions, blended scores, normalised scores per source, weights)."""
        raw = self.score(user_id, None, ranked_ids)
        raw["search"] = np.asarray(search_scores, dtype=np.float64)
        del raw["content"]
        normalised = {source: _min_max(values) if values is not None else None for source, values in raw.items()}
        blended, effective = _blend(normalised, weights)
        return sorted(range(len(ranked_ids)), key=lambda i: (-blended[i], i)), blended, normalised, effective

    def _ranked(self, user_id: str, query: np.ndarray | None, candidates: dict[str, dict],
                weights: dict[str, float], strategy: str, cold_start: bool, limit: int,
                similarity: dict[str, float] | None = None) -> Recommendations:
        product_ids = list(candidates)
        normalised = {source: _min_max(raw) if raw is not None else None
                      for source, raw in self.score(user_id, query, product_ids, similarity).items()}
        blended, effective = _blend(normalised, weights)
        order = sorted(range(len(product_ids)), key=lambda i: (-blended[i], product_ids[i]))[:limit]
        items = [
            Recommendation(candidates[product_ids[i]], round(float(blended[i]), 6), score_breakdown(normalised, i))
            for i in order
        ]
        return Recommendations(strategy, cold_start, effective, items)


def score_breakdown(normalised: dict[str, np.ndarray | None], position: int) -> dict[str, float | None]:
    """One candidate's normalised score per source (None: the source has no score for it)."""
    return {source: (None if values is None or np.isnan(values[position]) else round(float(values[position]), 6))
            for source, values in normalised.items()}


def _blend(normalised: dict[str, np.ndarray | None], weights: dict[str, float]) -> tuple[np.ndarray, dict]:
    """Weighted sum of the sources; per candidate, the weights of the sources that scored it sum to 1."""
    effective = effective_weights(weights, {source for source, values in normalised.items() if values is not None})
    size = len(next(values for values in normalised.values() if values is not None))
    total, weight_sum = np.zeros(size), np.zeros(size)
    for source, weight in effective.items():
        present = np.isfinite(normalised[source])  # e.g. a product the model never saw
        total[present] += weight * normalised[source][present]
        weight_sum[present] += weight
    return np.divide(total, weight_sum, out=np.zeros_like(total), where=weight_sum > 0), effective


def _min_max(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the candidates (NaN stays NaN; all equal → 1)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values
    low, high = finite.min(), finite.max()
    if high == low:
        return np.where(np.isfinite(values), 1.0, np.nan)
    return (values - low) / (high - low)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm else vector
