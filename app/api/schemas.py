"""Request and response models shared by several blueprints: filters, stored products and search hits, and
the fields of every listed (attributed) answer."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, create_model, field_validator

from app.api.requests import ResponseModel
from app.core.catalog import Product
from app.storage.milvus_filters import ProductFilter
from app.storage.products import SearchHit

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
