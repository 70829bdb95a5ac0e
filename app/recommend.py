"""Recommendations: content (Milvus search with the user vector), collaborative (NCF, when a model is
served) and popularity, blended over a union of candidates with per-source scores normalised to [0, 1]."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from .events import EventStore
from .milvus_filters import ProductFilter
from .store import DENSE_FIELD, PRODUCT_FIELDS, ProductStore
from .users import UserVectorStore
from .weights import effective_weights

SOURCES = ("content", "collaborative", "popular")
DEFAULT_WEIGHTS = {"content": 0.5, "collaborative": 0.4, "popular": 0.1}
POPULAR_MARGIN = 16  # popular products read beyond the ones wanted, for those found inactive
POPULAR_CACHED = 200  # popular products a process keeps per category (POPULAR_CACHE_SECONDS)


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
                 collaborative: CollaborativeScorer | None = None, popular_cache_seconds: float = 0.0):
        self.products = products
        self.users = users
        self.events = events
        self.candidates = candidates
        self.collaborative = collaborative
        self.popular_cache_seconds = popular_cache_seconds
        self._popular_cache: dict[str | None, tuple[float, dict[str, dict]]] = {}  # category → (expiry, rows)
        self._popular_cache_lock = threading.Lock()

    def recommend(self, user_id: str, strategy: str = "hybrid", limit: int = 10, category: str | None = None,
                  exclude_purchased: bool = True, weights: dict[str, float] | None = None) -> Recommendations:
        """Candidates are gathered and scored by id (and vector); only the `limit` chosen are read in full."""
        user = self.users.get([user_id]).get(user_id)
        excluded = tuple(sorted(self.events.purchased_products(user_id))) if exclude_purchased else ()
        product_filter = ProductFilter(category=category, active=True, exclude_ids=excluded)
        if user is None or strategy == "popular" or not np.any(user.vector):
            popular = self.popular(limit, product_filter)
            return self._ranked(user_id, None, list(popular), {"popular": 1.0}, "popular", user is None, limit,
                                known_products=popular)
        query = _unit(user.vector)
        content = self.products.nearest(query, limit if strategy == "content" else self.candidates, product_filter,
                                        fields=("product_id",))
        similarity = {hit.product["product_id"]: hit.score for hit in content}  # cosine: unit query and products
        if strategy == "content":
            return self._ranked(user_id, query, list(similarity), {"content": 1.0}, "content", False, limit,
                                similarity)
        for product_id, product in self.popular(self.candidates, product_filter, fields=(DENSE_FIELD,)).items():
            similarity.setdefault(product_id, float(product[DENSE_FIELD] @ query))
        if strategy == "ncf" and self._model_knows(user_id):
            return self._ranked(user_id, query, list(similarity), {"collaborative": 1.0}, "ncf", False, limit,
                                similarity)
        return self._ranked(user_id, query, list(similarity), weights or DEFAULT_WEIGHTS, "hybrid", False, limit,
                            similarity)

    def _model_knows(self, user_id: str) -> bool:
        """Whether a collaborative model is served and was trained with this user."""
        return self.collaborative is not None and self.collaborative.score(user_id, []) is not None

    def popular(self, limit: int, product_filter: ProductFilter, fields: Sequence[str] = PRODUCT_FIELDS
                ) -> dict[str, dict]:
        """The most popular active products passing the filter, most popular first, with their `fields`.

        With POPULAR_CACHE_SECONDS, the top POPULAR_CACHED of each category are kept that long (the same for
        every user; a change of popularity or of a product shows once they expire).
        """
        fields = tuple(dict.fromkeys(("product_id", "active", *fields)))
        excluded = set(product_filter.exclude_ids)
        if self.popular_cache_seconds > 0:
            cached = self._cached_popular(product_filter.category)
            chosen = [row for product_id, row in cached.items() if product_id not in excluded][:limit]
            if len(chosen) == limit or len(cached) < POPULAR_CACHED:  # else more may exist beyond the cached
                return {row["product_id"]: {field: row[field] for field in fields} for row in chosen}
        return self._read_popular(limit, product_filter.category, excluded, fields)

    def _cached_popular(self, category: str | None) -> dict[str, dict]:
        with self._popular_cache_lock:
            expiry, rows = self._popular_cache.get(category, (0.0, {}))
        if time.monotonic() < expiry:
            return rows
        rows = self._read_popular(POPULAR_CACHED, category, set(), (*PRODUCT_FIELDS, DENSE_FIELD))
        with self._popular_cache_lock:
            self._popular_cache[category] = (time.monotonic() + self.popular_cache_seconds, rows)
        return rows

    def _read_popular(self, limit: int, category: str | None, excluded: set[str], fields: Sequence[str]
                      ) -> dict[str, dict]:
        """From the event store and Milvus; `fields` must hold product_id and active."""
        page_size = limit + len(excluded) + POPULAR_MARGIN
        chosen: dict[str, dict] = {}
        offset = 0
        while len(chosen) < limit:
            page = self.events.popular_products(page_size, offset, category)
            wanted = [product_id for product_id, _ in page if product_id not in excluded]
            found = self.products.get(wanted, fields=fields)
            for product_id in wanted:
                product = found.get(product_id)
                if product and product["active"] and len(chosen) < limit:
                    chosen[product_id] = product
            if len(page) < page_size:
                break
            offset += page_size
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
            for pid, product in self.products.get(missing, fields=("product_id", DENSE_FIELD)).items():
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

    def _ranked(self, user_id: str, query: np.ndarray | None, product_ids: list[str], weights: dict[str, float],
                strategy: str, cold_start: bool, limit: int, similarity: dict[str, float] | None = None,
                known_products: dict[str, dict] | None = None) -> Recommendations:
        """The `limit` best candidates by blended score, read in full (unless in `known_products`)."""
        normalised = {source: _min_max(raw) if raw is not None else None
                      for source, raw in self.score(user_id, query, product_ids, similarity).items()}
        blended, effective = _blend(normalised, weights)
        order = sorted(range(len(product_ids)), key=lambda i: (-blended[i], product_ids[i]))[:limit]
        products = dict(known_products or {})
        products.update(self.products.get([product_ids[i] for i in order if product_ids[i] not in products]))
        items = [
            Recommendation(products[product_ids[i]], round(float(blended[i]), 6), score_breakdown(normalised, i))
            for i in order if product_ids[i] in products  # unless deleted meanwhile
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
