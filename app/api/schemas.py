"""Request and response models shared by several blueprints: filters, stored products and search hits, the
fields of every listed (attributed) answer, and the search and recommendation parameters (experiments
validate their variants against them)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema, create_model, field_validator,
)

from app.api.requests import ResponseModel
from app.config.weights import EXCLUDABLE, parse_exclude, parse_weights
from app.core.catalog import Identifier, Product
from app.core.recommend import BLENDS, COLD_START_SOURCES, SOURCES, STRATEGIES
from app.storage.milvus_filters import ProductFilter
from app.storage.products import SearchHit
from app.storage.refine import Sort

# An exact-match filter value: no control characters (they cannot be written into a Milvus expression).
FilterText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]
ActiveFilter = Annotated[
    bool | None,
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": ["all", "any"]}], "default": True,
                    "description": "true, false, or all (no filter)"}),
]


class FilterParams(BaseModel):
    """Filters shared by search and similar-products calls."""

    model_config = ConfigDict(extra="forbid")

    category: FilterText | None = None
    brand: FilterText | None = None
    min_price: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    max_price: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False, description="not below min_price")
    active: ActiveFilter = True

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


# A product as stored and answered: Product's fields with their types and bounds, without its input cleaning.
StoredProduct = create_model("StoredProduct", __base__=ResponseModel,
                             **{name: (field.annotation, field) for name, field in Product.model_fields.items()})


class ProductHit(StoredProduct):
    """A stored product found by a search, with its score (and its 1-based rank per retriever when known)."""

    position: int = Field(description="1-based, for POST /events attribution")
    score: float
    retrievers: dict[str, int | None] | None = None
    scores: dict[str, float | None] | None = Field(None, description="personalised search: score per source")


def hit_json(hit: SearchHit) -> dict:
    body = {**hit.product, "score": round(hit.score, 6)}
    if hit.retrievers is not None:
        body["retrievers"] = hit.retrievers
    return body


class ExperimentRef(ResponseModel):
    id: str
    variant: str


class AttributedList(ResponseModel):
    """The fields every listed answer (search, recommendations, similar products) carries."""

    request_id: str = Field(description="name it with a position in POST /events `attribution`")
    experiment: ExperimentRef | None = Field(None, description="the experiment and variant that served the user")


SearchMode = Literal["hybrid", "dense", "sparse"]
Fusion = Literal["rrf", "weighted"]


class SearchParams(FilterParams):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
    limit: int = Field(10, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1000)
    mode: SearchMode = "hybrid"
    fusion: Fusion | None = Field(None, description="default: FUSION")
    dense_weight: float | None = Field(None, ge=0, le=1, allow_inf_nan=False, description="default: DENSE_WEIGHT")
    explain: bool = False
    user_id: Identifier | None = None
    ranker: bool = Field(False, description="reorder the hybrid candidates with the ranker trained on feedback")
    sort: Sort = Field("relevance", description="orders the best SORT_CANDIDATES matches; not with user_id")
    facets: bool = Field(False, description="add category, brand and price counts of the best SORT_CANDIDATES")

    @field_validator("sort")
    @classmethod
    def _relevance_when_personalised(cls, sort, info):
        if sort != "relevance" and info.data.get("user_id") is not None:
            raise ValueError("a personalised search (user_id) is ordered by relevance only")
        if sort != "relevance" and info.data.get("ranker"):
            raise ValueError("a search reordered by the ranker is ordered by relevance only")
        return sort


SOURCE_WEIGHT = rf"({'|'.join(SOURCES)}):[0-9]{{1,6}}(\.[0-9]+)?"  # parse_weights refuses 1e6 and more
SourceWeights = Annotated[
    dict[str, float],
    BeforeValidator(lambda text: parse_weights(str(text), SOURCES)),
    WithJsonSchema({
        "type": "string", "pattern": f"^{SOURCE_WEIGHT}(,{SOURCE_WEIGHT})*$",
        "examples": ["collaborative:1,item:2,content:0.5,popular:0.5"],
        "description": "source:weight pairs; weights non-negative, not all zero",
    }),
]
EXCLUDE_NAME = f"({'|'.join(EXCLUDABLE)})"
Exclusions = Annotated[
    tuple[str, ...],
    BeforeValidator(lambda text: parse_exclude(str(text))),
    WithJsonSchema({
        "type": "string", "pattern": f"^(none|{EXCLUDE_NAME}(,{EXCLUDE_NAME})*)$", "examples": ["purchased,rated"],
        "description": "products not recommended again: those the user purchased, rated, carted or viewed "
                       "(comma separated), or none; default RECOMMENDATION_EXCLUDE",
    }),
]


class RecommendationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal[STRATEGIES] = "hybrid"
    limit: int = Field(10, ge=1, le=100)
    category: FilterText | None = None
    exclude: Exclusions | None = None
    exclude_purchased: bool | None = Field(None, description="deprecated: false means exclude=none")
    weights: SourceWeights | None = None
    cold_start: Literal[COLD_START_SOURCES] = Field(
        "popular", description="what a user without personal sources gets: all-time popular or trending")
    blend: Literal[BLENDS] | None = Field(
        None, description="hybrid blend: rank (weighted rank scores) or learned (the model's blender); default "
                          "RECOMMENDATION_BLEND; weights= implies rank")

    def exclusions(self) -> tuple[str, ...] | None:
        """The event types to exclude (None: the deployment default)."""
        if self.exclude is None and self.exclude_purchased is False:
            return ()
        return self.exclude
