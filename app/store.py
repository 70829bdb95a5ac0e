"""The products collection in Milvus: schema, idempotent creation, writes and the three search modes."""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from pymilvus import (
    AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, MilvusException, RRFRanker, WeightedRanker,
)

from .availability import GuardedMilvusClient
from .embedding import check_vector_space, vector_space
from .metrics import TimedMilvusClient
from .milvus_filters import ProductFilter, field_in
from .settings import Settings

DENSE_FIELD, SPARSE_FIELD, TEXT_FIELD = "dense", "sparse", "text"
# Product vectors are unit length, so COSINE ranks as inner product does; unlike IP, weighted fusion then
# rescales dense scores linearly ((1 + cos) / 2) instead of squashing them with arctan.
DENSE_METRIC = "COSINE"
PRODUCT_FIELDS = (
    "product_id", "name", "description", "brand", "category", "sub_category", "price", "rating",
    "rating_count", "sold_count", "active", "skus", "created_at",
)
MAX_BATCH_ROWS = 500
LITE_INDEX_REFUSAL = "local mode only support"
# What Milvus Lite builds instead of an index type it refuses. Lite keeps every row in one growing segment,
# which segcore searches through its interim IVF index (fixed parameters: SEARCH_NPROBE does not apply there).
LITE_INDEX_FALLBACKS = {"HNSW": "IVF_FLAT"}
log = logging.getLogger(__name__)


class _HideLiteIndexRefusal(logging.Filter):
    """pymilvus logs every refused call with a traceback; the refusal of HNSW by Lite is expected and handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        return LITE_INDEX_REFUSAL not in record.getMessage()


logging.getLogger("pymilvus.decorators").addFilter(_HideLiteIndexRefusal())
# gRPC servers (Milvus Lite's included) refuse keepalive pings more often than every 5 minutes by default
# ("too_many_pings" GOAWAY); pymilvus pings every 10 s, idle or not.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000}


def connect(settings: Settings) -> GuardedMilvusClient:
    """A client for MILVUS_URI, or for the embedded Milvus Lite store under DATA_DIR, connected on first use.

    Each (re)connection and each call but flush, indexing and loading waits at most MILVUS_TIMEOUT; while
    Milvus is unreachable, calls fail fast with StoreUnavailable (app/availability.py).
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


class ProductStore:
    """Products with a dense vector and a sparse (BM25 or learned) vector, in one Milvus collection."""

    def __init__(self, client: MilvusClient, settings: Settings, dimension: int):
        self.client = client
        self.settings = settings
        self.dimension = dimension
        self.collection = settings.products_collection
        self.learned_sparse = settings.sparse_mode == "bge-m3"
        self._write_lock = threading.Lock()
        self.dense_index_type = settings.index_type  # what the collection really has, once ensured

    # ---- schema -------------------------------------------------------------------------------
    def ensure_collection(self) -> None:
        """Create the collection with its indexes if it does not exist; check its dimension if it does, and
        create its dense index if it has none (a rebuild stopped half-way)."""
        if self.client.has_collection(self.collection):
            self._check_existing_schema()
        else:
            self.client.create_collection(self.collection, schema=self._schema(), consistency_level="Strong")
            self.client.create_index(self.collection, self._sparse_index_params())
        if self.client.describe_index(self.collection, DENSE_FIELD) is None:
            self._create_dense_index()
        self.dense_index_type = self.client.describe_index(self.collection, DENSE_FIELD)["index_type"]
        if self.dense_index_type not in (self.settings.index_type, LITE_INDEX_FALLBACKS.get(self.settings.index_type)):
            log.warning("the dense index of %r is %s, not INDEX_TYPE=%s: `python -m app.cli rebuild-dense-index` "
                        "replaces it", self.collection, self.dense_index_type, self.settings.index_type)
        self.client.load_collection(self.collection)

    def rebuild_dense_index(self) -> str:
        """Replace the dense index by INDEX_TYPE's (searches fail while it builds); returns the type built."""
        with self._write_lock:
            self.client.release_collection(self.collection)
            self.client.drop_index(self.collection, DENSE_FIELD)
            self._create_dense_index()
            self.client.load_collection(self.collection)
            self.dense_index_type = self.client.describe_index(self.collection, DENSE_FIELD)["index_type"]
        return self.dense_index_type

    def _create_dense_index(self) -> None:
        """INDEX_TYPE on the dense field. Milvus Lite builds no HNSW: it gets IVF_FLAT, approximate as well."""
        try:
            self.client.create_index(self.collection, self._dense_index_params(self.settings.index_type))
        except MilvusException as exc:
            fallback = LITE_INDEX_FALLBACKS.get(self.settings.index_type)
            if LITE_INDEX_REFUSAL not in str(exc) or fallback is None:
                raise
            log.warning("%s is not available in Milvus Lite: the dense index is %s", self.settings.index_type, fallback)
            self.client.create_index(self.collection, self._dense_index_params(fallback))

    def _schema(self):
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
        schema.add_field(
            TEXT_FIELD, DataType.VARCHAR, max_length=32768, enable_analyzer=not self.learned_sparse,
            analyzer_params={"tokenizer": "standard", "filter": ["lowercase"]} if not self.learned_sparse else None,
        )
        schema.add_field(DENSE_FIELD, DataType.FLOAT_VECTOR, dim=self.dimension,
                         description=json.dumps(vector_space(self.settings)))  # checked by check_vector_space
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        if not self.learned_sparse:
            schema.add_function(Function(
                name="text_bm25", function_type=FunctionType.BM25,
                input_field_names=[TEXT_FIELD], output_field_names=[SPARSE_FIELD],
            ))
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
        with self._write_lock:
            for start in range(0, len(rows), MAX_BATCH_ROWS):
                self.client.upsert(self.collection, list(rows[start:start + MAX_BATCH_ROWS]))

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
        return True

    # ---- reads --------------------------------------------------------------------------------
    def get(self, product_ids: Iterable[str], fields: Sequence[str] = PRODUCT_FIELDS) -> dict[str, dict]:
        """product_id → the product's `fields` (add DENSE_FIELD for its vector), for the ids that exist."""
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        rows = self.client.get(self.collection, ids=ids, output_fields=list(fields))
        return {row["product_id"]: _clean(row) for row in rows}

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

    def search(
        self,
        dense_query: np.ndarray | None,
        sparse_query: str | dict[int, float] | None,
        product_filter: ProductFilter,
        mode: str = "hybrid",
        fusion: str = "rrf",
        dense_weight: float = 0.7,
        limit: int = 10,
        offset: int = 0,
        explain: bool = False,
    ) -> list[SearchHit]:
        """Search by dense vector, sparse query (raw text for BM25) or both fused by Milvus hybrid_search.

        The filter is set on every sub-request: hybrid search ignores a top-level filter. Hits carry their
        1-based rank per retriever: free in a single mode; in hybrid mode only with `explain`, which
        costs one more search per retriever.
        """
        expr = product_filter.expression()
        window = max(self.settings.hybrid_candidates, offset + limit) if mode == "hybrid" else offset + limit
        requests = {}
        if mode in ("hybrid", "dense"):
            requests["dense"] = AnnSearchRequest(
                [dense_query.tolist()], DENSE_FIELD, self._dense_search_params(window), window, expr=expr
            )
        if mode in ("hybrid", "sparse"):
            requests["sparse"] = AnnSearchRequest(
                [sparse_query], SPARSE_FIELD, {"metric_type": "IP" if self.learned_sparse else "BM25"}, window,
                expr=expr,
            )
        if mode != "hybrid":
            hits = self._search_request(requests[mode], list(PRODUCT_FIELDS))[offset:]
            return [SearchHit(_clean(hit["entity"]), float(hit["distance"]), {mode: offset + i + 1})
                    for i, hit in enumerate(hits)]
        ranker = RRFRanker(self.settings.rrf_k) if fusion == "rrf" else WeightedRanker(
            dense_weight, 1.0 - dense_weight, norm_score=True
        )
        hits = self.client.hybrid_search(
            self.collection, list(requests.values()), ranker, limit=offset + limit, output_fields=list(PRODUCT_FIELDS),
        )[0][offset:]
        ranks = {name: self._ranked_ids(request) for name, request in requests.items()} if explain else {}
        return [
            SearchHit(
                _clean(hit["entity"]), float(hit["distance"]),
                {name: ranked.get(hit["entity"]["product_id"]) for name, ranked in ranks.items()} if explain else None,
            )
            for hit in hits
        ]

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
            self.collection, data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field=DENSE_FIELD,
            limit=limit, filter=product_filter.expression(), search_params=self._dense_search_params(limit),
            output_fields=list(fields),
        )[0]
        return [SearchHit(_clean(hit["entity"]), float(hit["distance"]), {"dense": i + 1}) for i, hit in enumerate(hits)]

    def _search_request(self, request: AnnSearchRequest, output_fields: list[str]) -> list:
        return self.client.search(
            self.collection, data=request.data, anns_field=request.anns_field, limit=request.limit,
            filter=request.expr, search_params=request.param, output_fields=output_fields,
        )[0]

    def _ranked_ids(self, request: AnnSearchRequest) -> dict[str, int]:
        """product_id → 1-based rank in this retriever's candidate list."""
        hits = self._search_request(request, ["product_id"])
        return {hit["product_id"]: rank for rank, hit in enumerate(hits, start=1)}

    def _dense_search_params(self, limit: int) -> dict:
        params = {
            "HNSW": {"ef": max(self.settings.search_ef, limit)},
            "IVF_FLAT": {"nprobe": min(self.settings.search_nprobe, self.settings.ivf_nlist)},
        }.get(self.dense_index_type, {})
        return {"metric_type": DENSE_METRIC, "params": params}


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
