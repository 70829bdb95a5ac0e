"""The product record: validation (pydantic) and the text each product is searched by."""
from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
MAX_TEXT_CHARS = 8192


class Sku(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    price: float = Field(ge=0, le=1e9)
    stock: int = Field(ge=0, le=10**9)
    variant: Annotated[str, StringConstraints(max_length=128)] = ""


class Product(BaseModel):
    """A catalogue product as accepted by POST /products and the seed scripts."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    product_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    description: Annotated[str, StringConstraints(max_length=4000)] = ""
    brand: Annotated[str, StringConstraints(max_length=128)] = ""
    category: Annotated[str, StringConstraints(max_length=128)] = ""
    sub_category: Annotated[str, StringConstraints(max_length=128)] = ""
    price: float = Field(default=0.0, ge=0, le=1e9)
    rating: float = Field(default=0.0, ge=0, le=5)
    rating_count: int = Field(default=0, ge=0, le=10**12)
    sold_count: int = Field(default=0, ge=0, le=10**12)
    active: bool = True
    skus: list[Sku] = Field(default_factory=list, max_length=100)
    created_at: int = Field(default_factory=lambda: int(time.time()), ge=0, le=2**40)

    @field_validator("name", "description")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
            raise ValueError("control characters are not allowed")
        return value

    @field_validator("brand", "category", "sub_category")
    @classmethod
    def _filterable(cls, value: str) -> str:
        """Filter values: no control characters at all (a Milvus filter literal cannot hold them)."""
        if any(ord(ch) < 32 for ch in value):
            raise ValueError("control characters (tabs and newlines included) are not allowed")
        return value


def embedding_text(product: Product) -> str:
    """The text the dense model embeds: name, brand, category and description (codes add only noise)."""
    parts = [product.name, product.brand, product.category, product.sub_category, product.description]
    return " | ".join(part for part in parts if part)[:MAX_TEXT_CHARS]


def search_text(product: Product) -> str:
    """The text BM25 indexes: the embedding text plus SKU codes and variants, for exact look-ups."""
    codes = " ".join(f"{sku.sku} {sku.variant}".strip() for sku in product.skus)
    return f"{embedding_text(product)} | {codes}"[:MAX_TEXT_CHARS] if codes else embedding_text(product)
