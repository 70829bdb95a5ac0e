"""Products: upsert (one or a list), read, delete, and similar products."""
from __future__ import annotations

import re

from flask import Blueprint
from pydantic import Field, TypeAdapter

from ..auth import require_api_key
from ..catalog import ID_PATTERN, Product
from ..errors import ApiError
from ..indexing import index_products
from ..requests import json_body, query_args
from ..resources import resources
from .search import FilterParams, hit_json

bp = Blueprint("products", __name__, url_prefix="/products")

MAX_PRODUCTS_PER_REQUEST = 1000
_products_adapter = TypeAdapter(list[Product])


class SimilarParams(FilterParams):
    limit: int = Field(10, ge=1, le=100)


def valid_product_id(product_id: str) -> str:
    if not re.fullmatch(ID_PATTERN, product_id):
        raise ApiError(422, "invalid_field", f"product_id must match {ID_PATTERN}", "product_id")
    return product_id


@bp.post("")
@require_api_key
def upsert_products():
    """Validate every product first (a batch with one bad product is rejected whole), then embed and upsert."""
    body = json_body()
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ApiError(422, "empty_batch", "send one product or a non-empty list")
    if len(items) > MAX_PRODUCTS_PER_REQUEST:
        raise ApiError(413, "batch_too_large", f"at most {MAX_PRODUCTS_PER_REQUEST} products per request")
    products = _products_adapter.validate_python(items)
    ids = [product.product_id for product in products]
    if len(set(ids)) != len(ids):
        raise ApiError(422, "duplicate_product_id", "a product_id appears twice in the batch", "product_id")
    res = resources()
    written = index_products(products, res.products, res.encoder)
    return {"upserted": written, "product_ids": ids}, 200


@bp.get("/<product_id>")
def get_product(product_id: str):
    found = resources().products.get([valid_product_id(product_id)])
    if not found:
        raise ApiError(404, "product_not_found", f"no product {product_id!r}")
    return found[product_id]


@bp.delete("/<product_id>")
@require_api_key
def delete_product(product_id: str):
    if not resources().products.delete(valid_product_id(product_id)):
        raise ApiError(404, "product_not_found", f"no product {product_id!r}")
    return {"deleted": product_id}


@bp.get("/<product_id>/similar")
def similar_products(product_id: str):
    params = query_args(SimilarParams)
    hits = resources().products.similar(valid_product_id(product_id), params.limit, params.product_filter())
    if hits is None:
        raise ApiError(404, "product_not_found", f"no product {product_id!r}")
    return {"product_id": product_id, "results": [hit_json(hit) for hit in hits]}
