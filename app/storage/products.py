"""The products collection in Milvus: schema, idempotent creation, writes and the three search modes."""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, MilvusException, RRFRanker

from app.config.settings import Settings
from app.storage import fusion as fusers
from app.storage.availability import GuardedMilvusClient
from app.storage.milvus_filters import ProductFilter, field_in
from app.storage.milvus_metrics import TimedMilvusClient
from app.storage.product_cache import RowCache
from app.storage.product_flags import ProductFlags
from app.storage.refine import Sort, facet_counts, sort_matches
from app.storage.vector_space import check_vector_space, vector_space

DENSE_FIELD, SPARSE_FIELD, TEXT_FIELD = "dense", "sparse", "text"
# BM25 over the product's name and brand only (a name match weighs more than a description match); absent
# from collections created before it and in SPARSE_MODE=bge-m3.
NAME_TEXT_FIELD, NAME_SPARSE_FIELD = "name_text", "name_sparse"
ANALYZERS = {"english": {"type": "english"}, "standard": {"tokenizer": "standard", "filter": ["lowercase"]}}
# The retrievers of a search: name → the vector field it searches
RETRIEVER_FIELDS = {"dense": DENSE_FIELD, "sparse": SPARSE_FIELD, "name": NAME_SPARSE_FIELD}
# Product vectors are unit length and queries are made so: their inner product is their cosine, which weighted fusion
# (app/storage/fusion.py) adds as it is, a score on a fixed scale. IP, not COSINE: exact (FLAT) search under COSINE
# normalises every stored vector again per search, ~1.8x the time at 100,000 products (decisions/0007).
DENSE_METRIC = "IP"
PRODUCT_FIELDS = (
    "product_id", "name", "description", "brand", "category", "sub_category", "price", "rating",
    "rating_count", "sold_count", "active", "skus", "created_at",
)
CANDIDATE_FLAGS = ("product_id", "active", "category")  # what candidate_rows reads without vectors (and caches)
CANDIDATE_FIELDS = (*CANDIDATE_FLAGS, DENSE_FIELD)  # what candidate_rows reads with vectors (and caches)
MAX_BATCH_ROWS = 500
# ids per Milvus `get`: Milvus Lite's time grows faster than the number of ids (measured at 20,000 products:
# 1,000 products with vectors in one get ~340 ms, in gets of 100 ~160 ms); the gets of one call run in parallel
GET_BATCH_IDS = 100
GET_THREADS = 4
LITE_INDEX_REFUSAL = "local mode only support"
# What Milvus Lite builds instead of an index type it refuses: FLAT, exact. Lite builds no index of its own: a
# sealed segment under IVF_FLAT is searched through segcore's interim IVF index, whose fixed parameters lose ~10% of
# the exact top 10 from ~90,000 products on (SEARCH_NPROBE does not reach it; decisions/0007).
LITE_INDEX_FALLBACKS = {"HNSW": "FLAT"}
log = logging.getLogger(__name__)


class _HideLiteIndexRefusal(logging.Filter):
    """pymilvus logs every refused call with a traceback; the refusal of HNSW by Lite is expected and handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        return LITE_INDEX_REFUSAL not in record.getMessage()


logging.getLogger("pymilvus.decorators").addFilter(_HideLiteIndexRefusal())
# gRPC servers (Milvus Lite's included) answer keepalive pings sent more often than every 5 minutes during calls, or
# every 2 hours on a connection without calls, with a "too_many_pings" GOAWAY; pymilvus pings every 10 s, idle or
# not. So: every 10 minutes (timers jitter: twice the server's minimum), and only while a call is running (a client
# idle for 30 min drew the GOAWAY at 10-minute pings; a dead idle connection shows at its next call, which reconnects).
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 600_000, "grpc.keepalive_permit_without_calls": 0}


def connect(settings: Settings) -> GuardedMilvusClient:
    """A client for MILVUS_URI, or for the embedded Milvus Lite store under DATA_DIR, connected on first use.

    Each (re)connection and each call but flush, indexing and loading waits at most MILVUS_TIMEOUT; while
    Milvus is unreachable, calls fail fast with StoreUnavailable (app/storage/availability.py).
    """
    uri = settings.resolved_milvus_uri
    if "://" not in uri:
        if Path(uri).is_dir():
            raise RuntimeError(f"{uri} is a Milvus Lite 3.x store, which Milvus Lite 2.5 cannot open: "
                               "re-seed into a new DATA_DIR (see README, Milvus)")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    return GuardedMilvusClient(
        lambda: TimedMilvusClient(MilvusClient(uri=uri, token=settings.milvus_token, timeout=settings.milvus_timeout,
                                               grpc_options=GRPC_OPTIONS)),
        settings.milvus_timeout,
    )


@dataclass(frozen=True)
class SearchHit:
    product: dict
    score: float
    retrievers: dict[str, int | None] | None  # None: not asked for (hybrid without explain)


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    facets: dict | None  # counts over the matched set, when asked for


class ProductStore:
    """Products with a dense vector and a sparse (BM25 or learned) vector, in one Milvus collection."""

    def __init__(self, client: MilvusClient, settings: Settings, dimension: int):
        self.client = client
        self.settings = settings
        self.dimension = dimension
        self.learned_sparse = settings.sparse_mode == "bge-m3"
        self._write_lock = threading.Lock()
        self.dense_index_type = settings.index_type  # what the collection really has, once ensured
        self.dense_metric = DENSE_METRIC  # idem (a collection made before IP is searched by COSINE until rebuilt)
        self.has_name_field = not self.learned_sparse  # what the collection really has, once ensured
        self._serving: str | None = None
        self._checked_at = -float("inf")
        self._retrieve_pool = ThreadPoolExecutor(max_workers=len(RETRIEVER_FIELDS), thread_name_prefix="retrieve")
        self._get_pool = ThreadPoolExecutor(max_workers=GET_THREADS, thread_name_prefix="get")
        # candidate rows with vectors, and without (flags and category alone: read and kept apart)
        self.candidate_caches = {vectors: RowCache(settings.product_cache_size, settings.product_cache_seconds)
                                 for vectors in (True, False)}
        self.flags = ProductFlags(partial(self.scan, CANDIDATE_FLAGS), self.count, settings.product_flags_seconds,
                                  settings.product_flags_max)  # every product's flags, when it is not too many

    # ---- which collection serves --------------------------------------------------------------
    @property
    def pointer_collection(self) -> str:
        """Where `rebuild-collection` records the collection now serving PRODUCTS_COLLECTION (Milvus Lite
        has no aliases): absent until the first rebuild, when PRODUCTS_COLLECTION itself serves."""
        return f"{self.settings.products_collection}_serving"

    @property
    def collection(self) -> str:
        """The collection serving the products, looked up again every COLLECTION_CHECK_SECONDS."""
        now = time.monotonic()
        if now - self._checked_at >= self.settings.collection_check_seconds:
            self._checked_at = now
            serving = self._read_pointer()
            if serving != self._serving:
                if self._serving is not None:
                    log.info("products are now served by collection %r", serving)
                self._serving = serving
                self._forget_candidates()
                if self.client.has_collection(serving):
                    self._describe(serving)
        return self._serving

    def _read_pointer(self) -> str:
        base = self.settings.products_collection
        if not self.client.has_collection(self.pointer_collection):
            return base
        rows = self.client.get(self.pointer_collection, ids=[base], output_fields=["serving"])
        return rows[0]["serving"] if rows else base

    def _write_pointer(self, serving: str) -> None:
        if not self.client.has_collection(self.pointer_collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("base", DataType.VARCHAR, is_primary=True, max_length=256)
            schema.add_field("serving", DataType.VARCHAR, max_length=256)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field
            index = MilvusClient.prepare_index_params()
            index.add_index("unused", index_type="FLAT", metric_type="L2")
            self.client.create_collection(self.pointer_collection, schema=schema, index_params=index,
                                          consistency_level="Strong")
        self.client.upsert(self.pointer_collection,
                           [{"base": self.settings.products_collection, "serving": serving, "unused": [0.0, 0.0]}])

    # ---- schema -------------------------------------------------------------------------------
    def ensure_collection(self) -> None:
        """Create the collection with its indexes if it does not exist; check its dimension if it does, and
        create its dense index if it has none (a rebuild stopped half-way)."""
        collection = self.collection
        if self.client.has_collection(collection):
            self._check_existing_schema()
        else:
            self._create(collection)
        self._describe(collection)
        if self.client.describe_index(collection, DENSE_FIELD) is None:
            self._create_dense_index(collection)
        self._note_dense_index(collection)
        if self.dense_index_type not in (self.settings.index_type, LITE_INDEX_FALLBACKS.get(self.settings.index_type)) \
                or self.dense_metric != DENSE_METRIC:
            log.warning("the dense index of %r is %s (%s), not INDEX_TYPE=%s (%s): `python -m app.ops.cli "
                        "rebuild-dense-index` replaces it", self.collection, self.dense_index_type, self.dense_metric,
                        self.settings.index_type, DENSE_METRIC)
        self.client.load_collection(collection)

    def _create(self, collection: str) -> None:
        self.client.create_collection(collection, schema=self._schema(), consistency_level="Strong")
        self.client.create_index(collection, self._sparse_index_params())

    def _describe(self, collection: str) -> None:
        """Note what `collection` really has: a name field, its analyzer (an old one is served as it is)."""
        fields = {field["name"]: field for field in self.client.describe_collection(collection)["fields"]}
        self.has_name_field = NAME_SPARSE_FIELD in fields
        analyzer = fields[TEXT_FIELD]["params"].get("analyzer_params")
        if self.has_name_field and analyzer and json.loads(analyzer) != ANALYZERS[self.settings.text_analyzer]:
            log.warning("collection %r analyses text with %s, not TEXT_ANALYZER=%s: `python -m app.ops.cli "
                        "rebuild-collection` rebuilds it", collection, analyzer, self.settings.text_analyzer)
        elif not self.has_name_field and not self.learned_sparse:
            log.warning("collection %r predates the name retriever and TEXT_ANALYZER: `python -m app.ops.cli "
                        "rebuild-collection` rebuilds it", collection)
        if self.client.describe_index(collection, DENSE_FIELD) is not None:
            self._note_dense_index(collection)

    def rebuild_collection(self, on_batch=None) -> tuple[str, str, int]:
        """Copy every product (stored vectors: no re-embedding) into a new collection with today's schema and
        TEXT_ANALYZER, then point the service at it. Searches keep being answered by the old collection until
        the switch; writes made while copying reach only the old one (pause them). The old collection is kept.
        Returns (old collection, new collection, products copied)."""
        source = self._read_pointer()
        match = re.fullmatch(re.escape(self.settings.products_collection) + r"_v(\d+)", source)
        target = f"{self.settings.products_collection}_v{int(match.group(1)) + 1 if match else 2}"
        if self.client.has_collection(target):  # a rebuild stopped half-way: never served
            self.client.drop_collection(target)
        self._create(target)
        self._create_dense_index(target)
        fields = [*PRODUCT_FIELDS, TEXT_FIELD, DENSE_FIELD, *([SPARSE_FIELD] if self.learned_sparse else [])]
        iterator = self.client.query_iterator(source, batch_size=MAX_BATCH_ROWS, filter="", output_fields=fields)
        copied = 0
        while batch := iterator.next():
            rows = [{**_clean({field: row[field] for field in PRODUCT_FIELDS}), TEXT_FIELD: row[TEXT_FIELD],
                     **{field: row[field] for field in fields[len(PRODUCT_FIELDS) + 1:]}} for row in batch]
            self.client.upsert(target, rows if self.learned_sparse else with_name_text(rows))
            copied += len(rows)
            if on_batch:
                on_batch(copied)
        iterator.close()
        self.client.flush(target)
        self.client.load_collection(target)
        self._write_pointer(target)
        self._checked_at = -float("inf")
        return source, target, copied

    def rebuild_dense_index(self) -> str:
        """Replace the dense index by INDEX_TYPE's (searches fail while it builds); returns the type built."""
        collection = self.collection
        with self._write_lock:
            self.client.release_collection(collection)
            self.client.drop_index(collection, DENSE_FIELD)
            self._create_dense_index(collection)
            self.client.load_collection(collection)
            self._note_dense_index(collection)
        return self.dense_index_type

    def _note_dense_index(self, collection: str) -> None:
        """Note the dense index's type and metric (searches must use the metric it was built with)."""
        index = self.client.describe_index(collection, DENSE_FIELD)
        self.dense_index_type, self.dense_metric = index["index_type"], index["metric_type"]

    def _create_dense_index(self, collection: str) -> None:
        """INDEX_TYPE on the dense field. Milvus Lite builds no HNSW: it gets FLAT (exact)."""
        try:
            self.client.create_index(collection, self._dense_index_params(self.settings.index_type))
        except MilvusException as exc:
            fallback = LITE_INDEX_FALLBACKS.get(self.settings.index_type)
            if LITE_INDEX_REFUSAL not in str(exc) or fallback is None:
                raise
            log.warning("%s is not available in Milvus Lite: the dense index is %s", self.settings.index_type, fallback)
            self.client.create_index(collection, self._dense_index_params(fallback))

    def _schema(self):
        schema = product_fields_schema()
        analyzer = None if self.learned_sparse else ANALYZERS[self.settings.text_analyzer]
        schema.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=32768, enable_analyzer=not self.learned_sparse,
                         analyzer_params=analyzer)
        schema.add_field(DENSE_FIELD, DataType.FLOAT_VECTOR, dim=self.dimension,
                         description=json.dumps(vector_space(self.settings)))  # checked by check_vector_space
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        if not self.learned_sparse:
            schema.add_field(NAME_TEXT_FIELD, DataType.VARCHAR, max_length=2048, enable_analyzer=True,
                             analyzer_params=analyzer)
            schema.add_field(NAME_SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
            for name, source, output in (("text_bm25", TEXT_FIELD, SPARSE_FIELD),
                                         ("name_bm25", NAME_TEXT_FIELD, NAME_SPARSE_FIELD)):
                schema.add_function(Function(name=name, function_type=FunctionType.BM25,
                                             input_field_names=[source], output_field_names=[output]))
        return schema

    def _dense_index_params(self, index_type: str):
        params = MilvusClient.prepare_index_params()
        dense_params = {
            "HNSW": {"M": self.settings.hnsw_m, "efConstruction": self.settings.hnsw_ef_construction},
            "IVF_FLAT": {"nlist": self.settings.ivf_nlist},
        }.get(index_type, {})
        params.add_index(DENSE_FIELD, index_type=index_type, metric_type=DENSE_METRIC, params=dense_params)
        return params

    def _sparse_index_params(self):
        params = MilvusClient.prepare_index_params()
        params.add_index(
            SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="IP" if self.learned_sparse else "BM25"
        )
        if not self.learned_sparse:
            params.add_index(NAME_SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        return params

    def _check_existing_schema(self) -> None:
        description = self.client.describe_collection(self.collection)
        for field in description["fields"]:
            if field["name"] == DENSE_FIELD:
                stored = int(field["params"]["dim"])
                if stored != self.dimension:
                    raise RuntimeError(
                        f"collection {self.collection!r} holds {stored}-d vectors but the model gives "
                        f"{self.dimension}-d: use another PRODUCTS_COLLECTION or re-seed"
                    )
                check_vector_space(field.get("description", ""), self.settings, self.collection)

    # ---- writes -------------------------------------------------------------------------------
    def upsert(self, rows: Sequence[dict]) -> None:
        """Insert or replace rows (product fields + text + vectors), in batches."""
        collection = self.collection
        rows = with_name_text(rows) if self.has_name_field else rows
        with self._write_lock:
            for start in range(0, len(rows), MAX_BATCH_ROWS):
                self.client.upsert(collection, list(rows[start:start + MAX_BATCH_ROWS]))
            self._forget_candidates([row["product_id"] for row in rows])
            self.flags.put(rows)

    def flush(self) -> None:
        """Persist and index everything written so far (searching an unindexed tail is slow)."""
        with self._write_lock:
            self.client.flush(self.collection)

    def delete(self, product_id: str) -> bool:
        """Delete one product; False if it was not there."""
        with self._write_lock:
            if not self.get([product_id]):
                return False
            self.client.delete(self.collection, ids=[product_id])
            self._forget_candidates([product_id])
            self.flags.forget([product_id])
        return True

    # ---- reads --------------------------------------------------------------------------------
    def get(self, product_ids: Iterable[str], fields: Sequence[str] = PRODUCT_FIELDS) -> dict[str, dict]:
        """product_id → the product's `fields` (add DENSE_FIELD for its vector), for the ids that exist."""
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        collection, fields = self.collection, list(fields)
        chunks = [ids[start:start + GET_BATCH_IDS] for start in range(0, len(ids), GET_BATCH_IDS)]

        def read(chunk: list[str]) -> list[dict]:
            return self.client.get(collection, ids=chunk, output_fields=fields)

        batches = [read(chunks[0])] if len(chunks) == 1 else self._get_pool.map(read, chunks)
        return {row["product_id"]: _clean(row) for rows in batches for row in rows}

    def candidate_rows(self, product_ids: Iterable[str], vectors: bool = True) -> dict[str, dict]:
        """product_id → the product's CANDIDATE_FIELDS (its vector read-only; without `vectors`,
        CANDIDATE_FLAGS), for the ids that exist: from the process's cache (PRODUCT_CACHE_SIZE,
        PRODUCT_CACHE_SECONDS) when it has them, so the active flag and the category may be up to
        PRODUCT_CACHE_SECONDS old after another process's write (flags: from the catalogue's flags kept in process,
        up to PRODUCT_FLAGS_SECONDS old); read products afresh with `get` before serving them."""
        cache = self.candidate_caches[vectors]
        read = self._read_candidate_rows if vectors else partial(self.get, fields=CANDIDATE_FLAGS)
        if not vectors and (kept := self.flags.get(product_ids)) is not None:
            found, missing = kept
            return {**found, **cache.get(missing, read)} if missing else found
        return cache.get(product_ids, read)

    def _read_candidate_rows(self, product_ids: list[str]) -> dict[str, dict]:
        rows = self.get(product_ids, fields=CANDIDATE_FIELDS)
        for row in rows.values():
            row[DENSE_FIELD].setflags(write=False)  # shared by the requests the cache serves
        return rows

    def _forget_candidates(self, product_ids: list[str] | None = None) -> None:
        for cache in self.candidate_caches.values():
            cache.invalidate(product_ids)
        if product_ids is None:
            self.flags.reset()

    def existing_ids(self, product_ids: Sequence[str]) -> set[str]:
        if not product_ids:
            return set()
        rows = self.client.query(
            self.collection, filter=field_in("product_id", list(product_ids)), output_fields=["product_id"]
        )
        return {row["product_id"] for row in rows}

    def scan(self, fields: Sequence[str], batch_size: int = 5000) -> list[dict]:
        """Every product, with only `fields` (for offline jobs; a full scan)."""
        iterator = self.client.query_iterator(self.collection, batch_size=batch_size, filter="",
                                              output_fields=list(fields))
        rows: list[dict] = []
        while batch := iterator.next():
            rows.extend(_clean(row) for row in batch)
        iterator.close()
        return rows

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def retrievers(self, mode: str) -> list[str]:
        """The retrievers a search in `mode` runs (the name retriever: hybrid only, when the collection has it)."""
        if mode != "hybrid":
            return [mode]
        return ["dense", "sparse"] + (["name"] if self.settings.name_retriever and self.has_name_field else [])

    def search(
        self,
        dense_query: np.ndarray | None,
        sparse_query: str | dict[int, float] | None,
        product_filter: ProductFilter,
        mode: str = "hybrid",
        fusion: str | None = None,
        dense_weight: float | None = None,
        limit: int = 10,
        offset: int = 0,
        explain: bool = False,
        sort: Sort = "relevance",
        facets: bool = False,
    ) -> SearchPage:
        """Search by dense vector, sparse query (raw text for BM25) or both (plus BM25 over name + brand).

        Hybrid RRF is one Milvus `hybrid_search` fused by its RRFRanker(RRF_K); hybrid weighted and hybrid
        with `explain` run one search per retriever and fuse here (app/storage/fusion.py: weighted over cosine and
        lexical scores divided by their best, `dense_weight` to dense and the rest shared by the lexical
        retrievers; RRF). `fusion` None: FUSION.

        Every retriever gets the filter. Hybrid mode fuses the best HYBRID_CANDIDATES of each retriever;
        `sort` other than relevance and `facets` work on the best SORT_CANDIDATES matches. Hits carry their
        1-based rank per retriever in a single mode, and in hybrid mode with `explain`.
        """
        refine = sort != "relevance" or facets
        fusion = fusion or self.settings.fusion
        window = offset + limit
        if mode == "hybrid":
            window = max(window, self.settings.hybrid_candidates)
        if refine:
            window = max(window, self.settings.sort_candidates)
        names = self.retrievers(mode)
        queries = {"dense": unit(dense_query).tolist() if dense_query is not None else None,
                   "sparse": sparse_query, "name": sparse_query}
        milvus_rrf = mode == "hybrid" and fusion == "rrf" and not explain
        # Every hit carries its whole product (the page is taken from the hits: no primary-key read after the
        # search, which took ~10 ms at 100k products on Lite; docs/search.md)
        fields = list(PRODUCT_FIELDS)
        expr, collection = product_filter.expression(), self.collection
        with_ranks = explain or mode != "hybrid"
        if milvus_rrf:
            requests = [AnnSearchRequest([queries[name]], RETRIEVER_FIELDS[name], self._search_params(name, window),
                                         window, expr=expr) for name in names]  # Milvus ignores a top-level filter
            # each retriever's best `window` are fused; only what is used (the page, or what sort/facets read)
            found = self.client.hybrid_search(collection, requests, RRFRanker(self.settings.rrf_k),
                                              limit=window if refine else offset + limit, output_fields=fields)[0]
            entities = {hit["entity"]["product_id"]: hit["entity"] for hit in found}
            matches, ranks = [(hit["entity"]["product_id"], float(hit["distance"])) for hit in found], {}
        else:
            lists = dict(zip(names, self._retrieve_pool.map(
                lambda name: self._retrieve(collection, name, queries[name], expr, window, fields), names)))
            entities = {hit["entity"]["product_id"]: hit["entity"] for hits in lists.values() for hit in hits}
            scored = {name: [(hit["entity"]["product_id"], float(hit["distance"])) for hit in hits]
                      for name, hits in lists.items()}
            if mode != "hybrid":
                matches = scored[mode]
            elif fusion == "rrf":
                matches = fusers.rrf(scored, self.settings.rrf_k)
            else:
                matches = fusers.weighted(scored, self.fusion_weights(names, dense_weight))
            ranks = {name: {pid: rank for rank, (pid, _) in enumerate(ranked, start=1)}
                     for name, ranked in scored.items()}
        matches = sort_matches(matches[:window], entities, sort)
        page = matches[offset:offset + limit]
        hits = [SearchHit(_clean(entities[pid]), score,
                          {name: ranks[name].get(pid) for name in names} if with_ranks else None)
                for pid, score in page]
        return SearchPage(hits, facet_counts([entities[pid] for pid, _ in matches]) if facets else None)

    def fusion_weights(self, names: Sequence[str], dense_weight: float | None) -> dict[str, float]:
        """Weighted fusion: `dense_weight` (default DENSE_WEIGHT) to dense, the rest shared by the others."""
        weight = self.settings.dense_weight if dense_weight is None else dense_weight
        lexical = [name for name in names if name != "dense"]
        return {"dense": weight, **{name: (1.0 - weight) / len(lexical) for name in lexical}}

    def _retrieve(self, collection: str, name: str, query, expr: str, limit: int, fields: list[str]) -> list:
        """One retriever's best `limit` hits (best first) under the filter `expr`."""
        return self.client.search(collection, data=[query], anns_field=RETRIEVER_FIELDS[name], limit=limit,
                                  filter=expr, search_params=self._search_params(name, limit),
                                  output_fields=fields)[0]

    def _search_params(self, name: str, limit: int) -> dict:
        """The search parameters of retriever `name` asked for `limit` hits."""
        if name == "dense":
            return self._dense_search_params(limit)
        return {"metric_type": "IP" if self.learned_sparse else "BM25"}

    def similar(self, product_id: str, limit: int, product_filter: ProductFilter) -> list[SearchHit] | None:
        """Nearest products by dense vector, excluding the product itself; None if it does not exist."""
        found = self.get([product_id], fields=("product_id", DENSE_FIELD)).get(product_id)
        if found is None:
            return None
        own = replace(product_filter, exclude_ids=product_filter.exclude_ids + (product_id,))
        return self.nearest(found[DENSE_FIELD], limit, own)

    def nearest(self, vector: np.ndarray, limit: int, product_filter: ProductFilter,
                fields: Sequence[str] = PRODUCT_FIELDS) -> list[SearchHit]:
        """Products nearest to `vector` (cosine; product vectors are unit length), with their `fields`."""
        hits = self.client.search(
            self.collection, data=[unit(vector).tolist()], anns_field=DENSE_FIELD,
            limit=limit, filter=product_filter.expression(), search_params=self._dense_search_params(limit),
            output_fields=list(fields),
        )[0]
        return [SearchHit(_clean(hit["entity"]), float(hit["distance"]), {"dense": i + 1}) for i, hit in enumerate(hits)]

    def _dense_search_params(self, limit: int) -> dict:
        params = {
            "HNSW": {"ef": max(self.settings.search_ef, limit)},
            "IVF_FLAT": {"nprobe": min(self.settings.search_nprobe, self.settings.ivf_nlist)},
        }.get(self.dense_index_type, {})
        return {"metric_type": self.dense_metric, "params": params}


def unit(vector: np.ndarray) -> np.ndarray:
    """`vector` scaled to unit length (float32): a dense query, so that its inner product is a cosine."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def product_fields_schema():
    """A collection schema holding the product fields (PRODUCT_FIELDS) only."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("product_id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("name", DataType.VARCHAR, max_length=2048)
    schema.add_field("description", DataType.VARCHAR, max_length=16384)
    for field in ("brand", "category", "sub_category"):
        schema.add_field(field, DataType.VARCHAR, max_length=512)
    schema.add_field("price", DataType.DOUBLE)
    schema.add_field("rating", DataType.FLOAT)
    schema.add_field("rating_count", DataType.INT64)
    schema.add_field("sold_count", DataType.INT64)
    schema.add_field("active", DataType.BOOL)
    schema.add_field("skus", DataType.JSON)
    schema.add_field("created_at", DataType.INT64)
    return schema


def name_text(product: dict) -> str:
    """The text the name retriever's BM25 indexes: a product's (dict's) name and brand."""
    return f"{product['name']} {product['brand']}".strip()


def with_name_text(rows: Sequence[dict]) -> list[dict]:
    """`rows` with the name retriever's text (name and brand) added."""
    return [{**row, NAME_TEXT_FIELD: name_text(row)} for row in rows]


def _clean(row: dict) -> dict:
    """A product dict with plain Python values (Milvus returns numpy/proto types for some fields)."""
    product = {field: row[field] for field in PRODUCT_FIELDS if field in row}
    for field in ("price", "rating"):
        if field in product:
            product[field] = round(float(product[field]), 4)
    for field in ("rating_count", "sold_count", "created_at"):
        if field in product:
            product[field] = int(product[field])
    if "active" in product:
        product["active"] = bool(product["active"])
    if DENSE_FIELD in row:
        product[DENSE_FIELD] = np.asarray(row[DENSE_FIELD], dtype=np.float32)
    return product
