"""Recommendations: candidates from every source, one union scored by all, blended by reciprocal rank.

Sources: `collaborative` (the served NCF model over the whole catalogue), `item` (item-to-item neighbours of
the user's most recent products, trained with the model), `content` (Milvus search with the user vector),
`similar` (Milvus search with the mean vector of the user's most recent products), `popular` (all-time event
counts) and `trending` (popularity decayed by POPULARITY_HALF_LIFE_DAYS). Each source that can score the
union ranks it; a candidate's per-source score is (k + 1) / (k + rank), 1 for that source's best, and its
blended score the weighted sum (weights renormalised over the sources available for the user): the rank blend.
The learned blend (`blend="learned"`) ranks the union by the served model's blender instead (ncf/blender.py),
for users the model knows, when the model directory has one. The blender ranks the candidates of its own sources
(PROPOSERS) before every other, so it is asked first from those alone: their union's flags and categories, no
vectors and no content search; the other sources are asked too only when those candidates cannot fill the answer.

A request reads the user's state once (app/core/user_state.py), asks the sources concurrently (a thread pool:
Milvus searches and the model's CPU work overlap), reads the union's ids, flags and (for the content sources)
vectors only (kept per process: PRODUCT_CACHE_SIZE), and reads whole products afresh for the answer's `limit`
alone.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np
from cachetools import TTLCache

from app.config.settings import RECOMMENDATION_BLENDS, RECOMMENDATION_SOURCES, Settings
from app.config.weights import effective_weights
from app.core.collaborative import ServedModel
from app.core.user_state import UserState, UserStates
from app.storage.collaborative_index import CollaborativeIndex
from app.storage.events import EventStore
from app.storage.milvus_filters import ProductFilter
from app.storage.products import DENSE_FIELD, PRODUCT_FIELDS, ProductStore
from app.storage.users import UserVectorStore
from ncf.blender import PROPOSERS, ranks

if TYPE_CHECKING:
    from ncf.recommender import NCFRecommender

SOURCES = RECOMMENDATION_SOURCES
STRATEGY_SOURCES = {"ncf": "collaborative", "item": "item", "content": "content", "similar": "similar",
                    "popular": "popular", "trending": "trending"}  # single-source strategies
STRATEGIES = ("hybrid", *STRATEGY_SOURCES)
BLENDS = RECOMMENDATION_BLENDS
COLD_START_SOURCES = ("popular", "trending")
POPULAR_MARGIN = 16  # popular products read beyond the ones wanted, for those found inactive
POPULAR_CACHED = 200  # popular products a process keeps per category (POPULAR_CACHE_SECONDS)
POPULAR_CACHE_KEYS = 4096  # (category, all time?) lists kept at most (then the least recently used go)
MODEL_MARGIN = 32  # model candidates read beyond the ones wanted, for those inactive or of another category
SOURCE_THREADS = 8  # per process: the sources of concurrent requests asked at once
log = logging.getLogger(__name__)


class CollaborativeScorer(Protocol):
    """The served model: `current()` is (version, model) or None; `score_ids` for personalised search."""

    def current(self) -> tuple[str, NCFRecommender] | None: ...

    def score_ids(self, user_id: str, product_ids: Sequence[str]) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Recommendation:
    product: dict
    score: float
    scores: dict[str, float | None]
    sources: list[str]  # the sources that proposed it


@dataclass(frozen=True)
class Recommendations:
    strategy: str  # the strategy actually used
    cold_start: bool
    weights: dict[str, float]  # effective weights (renormalised over the sources available); {}: learned blend
    items: list[Recommendation]
    model: str | None = None  # the version of the model whose scores were used
    blend: str = "rank"  # the blend actually used


@dataclass
class Candidates:
    """A user's candidate union: who proposed each, and each available source's raw score of every one."""

    product_ids: list[str]
    proposed_by: dict[str, set[str]]
    raw: dict[str, np.ndarray]  # source → scores aligned with product_ids (NaN: no opinion)
    model: str | None = None
    learned: np.ndarray | None = None  # the model's blender's scores (None: no blender, or a user it does not know)
    scored: np.ndarray | None = None  # with `learned`: which candidates the blender scored (the others come after)
    category: str | None = None  # the category asked for


@dataclass
class _Context:
    """What one request knows of the user, read once (the model snapshot included)."""

    user_id: str
    consumed: set[str]
    state: UserState
    model: tuple[str, NCFRecommender] | None

    @property
    def recent(self) -> list[str]:
        return self.state.recent

    @property
    def vector(self) -> np.ndarray | None:
        return self.state.vector

    @property
    def recent_vector(self) -> np.ndarray | None:
        return self.state.recent_vector

    def available(self) -> set[str]:
        sources = set(COLD_START_SOURCES)
        if self.model is not None and self.model[1].user_ids.index(self.user_id) is not None:
            sources.add("collaborative")
        if self.model is not None and self.model[1].item_knn is not None and self.recent:
            sources.add("item")
        if self.vector is not None:
            sources.add("content")
        if self.recent_vector is not None:
            sources.add("similar")
        return sources


class Recommender:
    def __init__(self, products: ProductStore, users: UserVectorStore, events: EventStore, candidates: int,
                 collaborative: CollaborativeScorer | None = None, popular_cache_seconds: float = 0.0,
                 weights: dict[str, float] | None = None, exclude: Sequence[str] = ("purchase",),
                 rank_constant: int = 60, recent_items: int = 5, retrieval: str = "exact",
                 index: CollaborativeIndex | None = None, retrieval_candidates: int = 500, blend: str = "rank",
                 recent_decay: float = 0.7):
        self.products = products
        self.events = events
        self.candidates = candidates  # per source
        self.collaborative = collaborative
        self.popular_cache_seconds = popular_cache_seconds
        self.weights = weights or dict.fromkeys(SOURCES, 1.0)
        self.exclude = tuple(exclude)  # event types whose products are not recommended again
        self.rank_constant = rank_constant
        self.recent_decay = recent_decay  # the item source's weight of the t-th newest product: recent_decay ** t
        self.blend_default = blend  # rank | learned (learned falls back to rank without a blender)
        # (category, all time?) → its POPULAR_CACHED most popular products, for POPULAR_CACHE_SECONDS
        self._popular_cache = TTLCache(maxsize=POPULAR_CACHE_KEYS, ttl=popular_cache_seconds or 1.0)
        self._popular_cache_lock = threading.Lock()
        self.retrieval = retrieval  # how collaborative candidates are found (COLLABORATIVE_RETRIEVAL)
        self.index = index  # the served models' GMF item vectors in Milvus (retrieval "ann")
        self.retrieval_candidates = retrieval_candidates  # found by GMF, ordered by NeuMF (COLLABORATIVE_CANDIDATES)
        self._pool = ThreadPoolExecutor(max_workers=SOURCE_THREADS, thread_name_prefix="recommend")
        self.user_states = UserStates(events, users, products, recent_items, self._pool)

    @classmethod
    def from_settings(cls, settings: Settings, products: ProductStore, users: UserVectorStore, events: EventStore,
                      served: ServedModel, **overrides) -> "Recommender":
        """The deployment's recommender over these stores and served model (`overrides`: arguments to change)."""
        return cls(products, users, events, **{
            "candidates": settings.recommendation_candidates, "collaborative": served,
            "popular_cache_seconds": settings.popular_cache_seconds,
            "weights": settings.recommendation_source_weights, "exclude": settings.recommendation_exclude_types,
            "rank_constant": settings.recommendation_rank_constant,
            "recent_items": settings.recommendation_recent_items, "retrieval": settings.collaborative_retrieval,
            "index": served.index, "retrieval_candidates": settings.collaborative_candidates,
            "blend": settings.recommendation_blend, "recent_decay": settings.recommendation_recent_decay,
            **overrides})

    def recommend(self, user_id: str, strategy: str = "hybrid", limit: int = 10, category: str | None = None,
                  exclude: Sequence[str] | None = None, weights: dict[str, float] | None = None,
                  cold_start: str = "popular", blend: str | None = None) -> Recommendations:
        """The `limit` best products for the user; `exclude`: event types whose products are left out
        (None: the deployment's). A single-source strategy unavailable for the user falls back to hybrid;
        a user with no personal source gets the `cold_start` source (popular or trending). The hybrid's
        `blend` (None: the deployment's) is `rank` whenever `weights` are given."""
        exclude = self.exclude if exclude is None else exclude
        learned = weights is None and (blend or self.blend_default) == "learned"  # if the strategy is hybrid
        context = self._context(user_id, exclude, vectors=False)
        if strategy == "hybrid" and learned:
            found = self._by_blender(context, limit, category)
            if found is not None:
                return found
        available = context.available()
        if strategy in ("hybrid", "content", "similar") or STRATEGY_SOURCES[strategy] not in available \
                or not available - set(COLD_START_SOURCES):  # the content sources may be asked: their vectors
            context = replace(context, state=self.user_states.with_vectors(user_id, context.state))
            available = context.available()
        personal = available - set(COLD_START_SOURCES)
        wanted = {STRATEGY_SOURCES[strategy]: 1.0} if strategy != "hybrid" else dict(weights or self.weights)
        if not set(wanted) & available:
            strategy, wanted = "hybrid", dict(self.weights)
        if strategy == "hybrid" and not personal:
            strategy, wanted = cold_start, {cold_start: 1.0}
        sources = available if strategy == "hybrid" else set(wanted)
        learned = learned and strategy == "hybrid"
        candidates = self._gather(context, sources, category, self.candidates if strategy == "hybrid" else limit,
                                  learned)
        return self._ranked(candidates, wanted, strategy, not personal, limit, learned)

    def _by_blender(self, context: _Context, limit: int, category: str | None) -> Recommendations | None:
        """The learned blend's answer from the blender's own sources (PROPOSERS) alone, when the served model's
        blender ranks for the user and the candidates it scores fill `limit` (None otherwise). The blender puts
        every other candidate after those, so the answer is the one every source would give; the `scores` of
        the sources not asked are None, and a product's `sources` name only those asked. `context`: read
        without vectors."""
        model = context.model[1] if context.model else None
        if model is None or model.blender is None or "collaborative" not in context.available():
            return None
        candidates = self._gather(context, set(PROPOSERS) & context.available(), category, self.candidates, True)
        return self._ranked(candidates, {}, "hybrid", False, limit, True, complete=True)

    def candidate_union(self, user_id: str, category: str | None = None, exclude: Sequence[str] | None = None
                   ) -> Candidates:
        """The hybrid union with every available source's raw scores and the blender's (what `blend` ranks), e.g.
        to tune weights."""
        context = self._context(user_id, self.exclude if exclude is None else exclude)
        return self._gather(context, context.available(), category, self.candidates, learned=True)

    def blend(self, candidates: Candidates, weights: dict[str, float], learned: bool = False
              ) -> tuple[list[int], np.ndarray, dict[str, np.ndarray], dict[str, float]]:
        """(order of the candidates, blended scores, per-source rank scores, effective weights): the rank
        blend, or with `learned` the blender's scores when the candidates have them (effective weights {})."""
        rank_scores = {source: _rank_scores(values, self.rank_constant) for source, values in candidates.raw.items()}
        if learned and candidates.learned is not None:
            blended, effective = candidates.learned, {}
        else:
            effective = effective_weights(weights, set(rank_scores))
            blended = np.zeros(len(candidates.product_ids))
            for source, weight in effective.items():
                blended += weight * np.nan_to_num(rank_scores[source])
        order = sorted(range(len(blended)), key=lambda i: (-blended[i], candidates.product_ids[i]))
        return order, blended, rank_scores, effective

    def _context(self, user_id: str, exclude: Sequence[str], vectors: bool = True) -> _Context:
        """Without `vectors`, the content sources are not available."""
        state = self.user_states.get(user_id, vectors)
        return _Context(user_id, state.consumed(exclude), state,
                        self.collaborative.current() if self.collaborative is not None else None)

    def _gather(self, context: _Context, sources: set[str], category: str | None, size: int, learned: bool = False
                ) -> Candidates:
        """Each source's `size` best candidates; their union, filtered (active, category, not consumed), is
        scored by every source in `sources` (`learned`: and by the model's blender, if it has one)."""
        product_filter = ProductFilter(category=category, active=True, exclude_ids=tuple(sorted(context.consumed)))
        model = context.model[1] if context.model else None
        pending: dict[str, Future] = {}  # the sources that wait on a store, asked first
        for source, query in (("content", context.vector), ("similar", context.recent_vector)):
            if source in sources:
                pending[source] = self._pool.submit(self.products.nearest, query, size, product_filter,
                                                    fields=("product_id",))
        for source in COLD_START_SOURCES:
            if source in sources:
                pending[source] = self._pool.submit(self.popular, size, product_filter, ("product_id",),
                                                    source == "popular")
        proposed: dict[str, list[str]] = {}
        if "collaborative" in sources:
            proposed["collaborative"] = self._collaborative_candidates(context, size)
        if "item" in sources:
            proposed["item"] = [product_id for product_id, _ in model.item_knn.recommend_recent(
                context.recent, size + MODEL_MARGIN, context.consumed, self.recent_decay)]
        for source, future in pending.items():
            found = future.result()
            proposed[source] = [hit.product["product_id"] for hit in found] if source in ("content", "similar") \
                else list(found)
        union = list(dict.fromkeys(product_id for ids in proposed.values() for product_id in ids))
        content = [(source, query) for source, query in (("content", context.vector),
                                                          ("similar", context.recent_vector)) if source in sources]
        # cached: _ranked reads the answer afresh
        rows = self._pool.submit(self.products.candidate_rows, union, bool(content))
        raw = self._raw_scores(context, sources, union)
        rows = rows.result()
        keep = [i for i, product_id in enumerate(union) if product_id in rows and rows[product_id]["active"]
                and (category is None or rows[product_id]["category"] == category)]
        union = [union[i] for i in keep]
        raw = {source: values[keep] for source, values in raw.items()}
        if content:
            vectors = np.array([rows[product_id][DENSE_FIELD] for product_id in union], dtype=np.float32)
            for source, query in content:
                raw[source] = vectors @ query if len(union) else np.empty(0)
        proposed_by: dict[str, set[str]] = {product_id: set() for product_id in union}
        for source, ids in proposed.items():  # its margin included: what replaces products filtered out
            for product_id in ids:
                if product_id in proposed_by:
                    proposed_by[product_id].add(source)
        best = {source: [product_id for product_id in ids if product_id in proposed_by][:size]
                for source, ids in proposed.items()}  # each source's `size` best that remain (what blenders fit on)
        learned_scores, scored = (_learned(context, sources, union, best, raw.get("collaborative"), raw.get("item"))
                                  if learned else (None, None))
        return Candidates(union, proposed_by, {source: raw[source] for source in SOURCES if source in raw},
                          context.model[0] if context.model else None, learned_scores, scored, category)

    def _collaborative_candidates(self, context: _Context, size: int) -> list[str]:
        """The model's best products for the user: NeuMF over the whole catalogue (retrieval "exact"), or
        NeuMF's best of the COLLABORATIVE_CANDIDATES best by the GMF part (by ANN in Milvus, "ann"; in process,
        "gmf" or when the index cannot answer)."""
        version, model = context.model
        if self.retrieval == "exact":
            return [product_id for product_id, _ in model.recommend(context.user_id, size + MODEL_MARGIN,
                                                                    context.consumed)]
        wanted = max(size + MODEL_MARGIN, self.retrieval_candidates)
        found = None
        if self.retrieval == "ann" and self.index is not None:
            try:
                found = self.index.search(version, model.gmf_user(context.user_id), wanted,
                                          tuple(sorted(context.consumed)))
            except Exception as exc:  # e.g. the collection of a model this process serves late was dropped
                log.warning("collaborative ANN search of %s failed (%s): scoring in process", version, exc)
        if found is None:
            found = model.retrieve(context.user_id, wanted, context.consumed)
        ids = [product_id for product_id, _ in found]
        scores = model.score_ids(context.user_id, ids)
        return [ids[i] for i in np.argsort(-scores, kind="stable")[:size + MODEL_MARGIN]]

    def _raw_scores(self, context: _Context, sources: set[str], union: list[str]) -> dict[str, np.ndarray]:
        """The model and popularity sources' scores of the union (the content sources need its vectors)."""
        popular_sources = [source for source in COLD_START_SOURCES if source in sources]
        popularity = self._pool.submit(self.events.popularities_of, union) if popular_sources else None
        raw: dict[str, np.ndarray] = {}
        model = context.model[1] if context.model else None
        if "collaborative" in sources:
            raw["collaborative"] = model.score_ids(context.user_id, union)
        if "item" in sources:
            raw["item"] = _positive(model.item_knn.score_recent(context.recent, union, self.recent_decay))
        if popularity is not None:
            decayed, all_time = popularity.result()  # both sources' scores from one read
            for source in popular_sources:
                counts = all_time if source == "popular" else decayed
                raw[source] = _positive(np.array([counts.get(product_id, 0.0) for product_id in union]))
        return raw

    def popular(self, limit: int, product_filter: ProductFilter, fields: Sequence[str] = PRODUCT_FIELDS,
                all_time: bool = False) -> dict[str, dict]:
        """The most popular active products passing the filter, most popular first, with their `fields`:
        by today's decayed popularity (trending), or by all-time event counts.

        With POPULAR_CACHE_SECONDS, the top POPULAR_CACHED of each category are kept that long (the same for
        every user; a change of popularity or of a product shows once they expire).
        """
        fields = tuple(dict.fromkeys(("product_id", "active", *fields)))
        excluded = set(product_filter.exclude_ids)
        if self.popular_cache_seconds > 0:
            cached = self._cached_popular(product_filter.category, all_time)
            chosen = [row for product_id, row in cached.items() if product_id not in excluded][:limit]
            if len(chosen) == limit or len(cached) < POPULAR_CACHED:  # else more may exist beyond the cached
                return {row["product_id"]: {field: row[field] for field in fields} for row in chosen}
        return self._read_popular(limit, product_filter.category, excluded, fields, all_time)

    def _cached_popular(self, category: str | None, all_time: bool) -> dict[str, dict]:
        with self._popular_cache_lock:
            rows = self._popular_cache.get((category, all_time))
        if rows is None:
            rows = self._read_popular(POPULAR_CACHED, category, set(), (*PRODUCT_FIELDS, DENSE_FIELD), all_time)
            with self._popular_cache_lock:
                self._popular_cache[(category, all_time)] = rows
        return rows

    def _read_popular(self, limit: int, category: str | None, excluded: set[str], fields: Sequence[str],
                      all_time: bool) -> dict[str, dict]:
        """From the event store and Milvus; `fields` must hold product_id and active."""
        page_size = limit + len(excluded) + POPULAR_MARGIN
        chosen: dict[str, dict] = {}
        offset = 0
        while len(chosen) < limit:
            page = self.events.popular_products(page_size, offset, category, all_time)
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

    def rerank(self, user_id: str, ranked_ids: Sequence[str], search_scores: Sequence[float],
               weights: dict[str, float]) -> tuple[list[int], np.ndarray, dict[str, np.ndarray | None], dict]:
        """Personalised order of search results: their search scores blended with collaborative and popular
        scores. Returns (new order as positions, blended scores, normalised scores per source, weights)."""
        popularity = self.events.popularity_of(ranked_ids)
        raw = {"search": np.asarray(search_scores, dtype=np.float64),
               "collaborative": self.collaborative.score_ids(user_id, ranked_ids) if self.collaborative else None,
               "popular": np.array([popularity.get(pid, 0.0) for pid in ranked_ids])}
        normalised = {source: _min_max(values) if values is not None else None for source, values in raw.items()}
        blended, effective = _blend(normalised, weights)
        return sorted(range(len(ranked_ids)), key=lambda i: (-blended[i], i)), blended, normalised, effective

    def _ranked(self, candidates: Candidates, weights: dict[str, float], strategy: str, cold_start: bool, limit: int,
                learned: bool = False, complete: bool = False) -> Recommendations | None:
        """The `limit` best candidates by blended score, read in full; with `complete`, of the candidates the
        blender scored only, and None when there are no `limit` of them to serve."""
        learned = learned and candidates.learned is not None
        if complete and not learned:
            return None
        if not candidates.product_ids:
            return Recommendations(strategy, cold_start, effective_weights(weights, set(candidates.raw)), [],
                                   candidates.model)
        order, blended, rank_scores, effective = self.blend(candidates, weights, learned)
        if complete:
            order = [i for i in order if candidates.scored[i]]
        ids = candidates.product_ids
        chosen = self._servable(ids, order, limit, candidates.category)
        if complete and len(chosen) < limit:
            return None
        items = [
            Recommendation(product, round(float(blended[i]), 6),
                           score_breakdown({source: rank_scores.get(source) for source in SOURCES}, i),
                           sorted(candidates.proposed_by[ids[i]]))
            for i, product in chosen
        ]
        return Recommendations(strategy, cold_start, effective, items, candidates.model,
                               "learned" if learned else "rank")

    def _servable(self, ids: list[str], order: list[int], limit: int, category: str | None
                  ) -> list[tuple[int, dict]]:
        """The first `limit` candidates in `order` that are, read afresh, still there, active and of `category`
        (the union was filtered on cached flags), with their products."""
        chosen: list[tuple[int, dict]] = []
        start = 0
        while len(chosen) < limit and start < len(order):
            page = order[start:start + limit - len(chosen)]
            products = self.products.get([ids[i] for i in page])
            chosen += [(i, products[ids[i]]) for i in page if ids[i] in products and products[ids[i]]["active"]
                       and (category is None or products[ids[i]]["category"] == category)]
            start += len(page)
        return chosen


def _learned(context: _Context, sources: set[str], union: list[str], best: dict[str, list[str]],
             collaborative: np.ndarray | None, item: np.ndarray | None
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The served model's blender's scores of the union and which candidates it scored, for a user the model
    knows ((None, None) otherwise); `best`: each source's `size` best candidates, best first; `collaborative`,
    `item`: the model's and the item source's scores of the union, already computed.

    The blender learnt from the best candidates of PROPOSERS only: the others (their margins, or proposed by
    `content`, `similar` or `trending` alone) come after them. Its rank features break ties in the order it
    was fitted on (collaborative's candidates, then item's, then popular's), whatever else the union holds."""
    model = context.model[1] if context.model else None
    if model is None or model.blender is None or "collaborative" not in sources or not union:
        return None, None
    position = {product_id: i for i, product_id in enumerate(union)}
    known_ids = list(dict.fromkeys(product_id for source in PROPOSERS for product_id in best.get(source, ())))
    known = np.array([position[product_id] for product_id in known_ids], dtype=np.int64)
    scored = np.zeros(len(union), dtype=bool)
    scored[known] = True
    scores = np.zeros(len(union))
    if len(known):
        proposed = {source: np.isin(known_ids, best.get(source, [])) for source in PROPOSERS}
        scores[known] = model.blender.score(model.blender.evidence(
            model, context.user_id, context.recent, known_ids, proposed,
            None if collaborative is None else collaborative[known], None if item is None else item[known]))
        scores[~scored] = scores[known].min() - 1.0
    return scores, scored


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


def _rank_scores(values: np.ndarray, constant: int) -> np.ndarray:
    """(constant + 1) / (constant + rank), rank 1 for the highest finite value; NaN stays NaN."""
    return (constant + 1.0) / (constant + ranks(values))


def _positive(values: np.ndarray) -> np.ndarray:
    """A score of 0 or less is no evidence: NaN."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0, values, np.nan)
