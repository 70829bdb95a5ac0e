"""Products: upsert (one or a list), read, delete, and similar products."""
from __future__ import annotations

from flask import Blueprint
from pydantic import BaseModel, Field

from app.api.auth import require_api_key
from app.api.errors import ApiError
from app.api.requests import Batch, BatchItems, ResponseModel, operation
from app.api.schemas import AttributedList, FilterParams, ProductHit, StoredProduct, hit_json
from app.core.catalog import Identifier, Product
from app.core.indexing import index_products
from app.core.resources import resources

bp = Blueprint("products", __name__, url_prefix="/products")

PRODUCT_BATCH = Batch(Product, max_items=1000, noun="product")


class ProductPath(BaseModel):
    product_id: Identifier = Field(examples=["P0000001"])


class SimilarParams(FilterParams):
    limit: int = Field(10, ge=1, le=100)


class Upserted(ResponseModel):
    upserted: int
    product_ids: list[str]


class Deleted(ResponseModel):
    deleted: str


class SimilarProducts(AttributedList):
    product_id: str
    results: list[ProductHit]


@bp.post("")
@require_api_key
@operation({200: Upserted}, body=PRODUCT_BATCH)
def upsert_products(body: BatchItems):
    """Validate every product first (a batch with one bad product is rejected whole), then embed and upsert."""
    ids = [product.product_id for product in body.items]
    seen = set()
    for position, product_id in enumerate(ids):
        if product_id in seen:
            raise ApiError(422, "duplicate_product_id", f"product_id {product_id!r} appears twice in the batch",
                           body.field(position, "product_id"))
        seen.add(product_id)
    res = resources()
    written = index_products(body.items, res.products, res.encoder)
    return {"upserted": written, "product_ids": ids}


@bp.get("/<product_id>")
@operation({200: StoredProduct}, path=ProductPath, errors=(404,))
def get_product(product_id: str):
    """The stored product."""
    found = resources().products.get([product_id])
    if not found:
        raise ApiError(404, "product_not_found", f"no product {product_id!r}")
    return found[product_id]


@bp.delete("/<product_id>")
@require_api_key
@operation({200: Deleted}, path=ProductPath, errors=(404,))
def delete_product(product_id: str):
    """Delete a product."""
    if not resources().products.delete(product_id):
        raise ApiError(404, "product_not_found", f"no product {product_id!r}")
    return {"deleted": product_id}


@bp.get("/<product_id>/similar")
@operation({200: SimilarProducts}, path=ProductPath, query=SimilarParams, errors=(404,))
def similar_products(product_id: str, params: SimilarParams):
    """The nearest products by dense vector, excluding the product itself, with the search filters."""
    hits = resources().products.similar(product_id, params.limit, params.product_filter())
    if hits is None:
        raise ApiError(404, "product_not_found", f"no product {product_id!r}")
    results = [hit_json(hit) for hit in hits]
    attributed = resources().impressions.present("similar", None, results, {"product_id": product_id})
    return {"product_id": product_id, "results": results, **attributed}
