"""The per-process cache of candidate rows (PRODUCT_CACHE_SIZE): what it keeps and what drops it (that a
recommendation never serves what only the cache believes active: test_recommendation_sources.py)."""
import time

import numpy as np
import pytest

from app.core.catalog import Product
from app.core.indexing import index_products
from app.storage.products import DENSE_FIELD, ProductStore
from tests.helpers import products_of_another_process
from tests.integration.test_events import active_products


def write(store: ProductStore, res, product: dict, **changes) -> None:
    index_products([Product.model_validate({**product, **changes})], store, res.encoder)


def test_candidate_rows_are_the_stored_rows_kept_until_this_process_writes(res, catalog):
    product = active_products(catalog)[0]
    product_id = product["product_id"]
    store = products_of_another_process(res, product_flags_max=0)  # the row cache alone (flags: test_candidate_flags)
    first = store.candidate_rows([product_id, "P-none"])
    flags = store.candidate_rows([product_id, "P-none"], vectors=False)  # kept apart, without the vector
    assert flags == {product_id: {"product_id": product_id, "active": True, "category": product["category"]}}
    fresh = store.get([product_id], fields=("product_id", "active", "category", DENSE_FIELD))[product_id]
    assert list(first) == [product_id] and first[product_id]["category"] == fresh["category"] == product["category"]
    assert np.array_equal(first[product_id][DENSE_FIELD], fresh[DENSE_FIELD])
    with pytest.raises(ValueError):  # shared by requests: read-only
        first[product_id][DENSE_FIELD][0] = 1.0
    try:
        write(res.products, res, product, active=False)  # another process: this store still has its row
        for vectors in (True, False):
            assert store.candidate_rows([product_id], vectors)[product_id]["active"] is True
            assert res.products.candidate_rows([product_id], vectors)[product_id]["active"] is False
        write(store, res, product, active=False, category="Elsewhere")  # its own write drops it
        for vectors in (True, False):
            assert store.candidate_rows([product_id], vectors)[product_id]["category"] == "Elsewhere"
        store.delete(product_id)
        assert store.candidate_rows([product_id]) == store.candidate_rows([product_id], vectors=False) == {}
    finally:
        write(res.products, res, product)


def test_candidate_rows_expire_after_product_cache_seconds_and_size_zero_keeps_none(res, catalog):
    product = active_products(catalog)[1]
    product_id = product["product_id"]
    timed = products_of_another_process(res, product_cache_seconds=0.5)
    uncached = products_of_another_process(res, product_cache_size=0)
    assert timed.candidate_rows([product_id])[product_id]["active"] is True
    try:
        write(res.products, res, product, active=False)
        assert timed.candidate_rows([product_id])[product_id]["active"] is True
        assert uncached.candidate_rows([product_id])[product_id]["active"] is False
        time.sleep(0.6)
        assert timed.candidate_rows([product_id])[product_id]["active"] is False
    finally:
        write(res.products, res, product)

