"""Every product's flags kept in process (PRODUCT_FLAGS_MAX, PRODUCT_FLAGS_SECONDS): read from them without a Milvus
read, this process's writes at once, another process's at the next scan, products added since read from Milvus."""
import pytest

from app.core.catalog import Product
from app.core.indexing import index_products
from tests.helpers import products_of_another_process
from tests.integration.test_events import active_products


def write(store, res, product: dict, **changes) -> None:
    index_products([Product.model_validate({**product, **changes})], store, res.encoder)


def test_flags_come_from_the_last_scan_and_this_processs_writes(res, catalog, monkeypatch):
    product, other = active_products(catalog)[2:4]
    product_id = product["product_id"]
    store = products_of_another_process(res, product_flags_seconds=3600, product_cache_size=0)
    store.flags.refresh()
    try:
        expected = {product_id: {"product_id": product_id, "active": True, "category": product["category"]}}
        with monkeypatch.context() as patched:
            patched.setattr(store, "get", lambda *a, **k: pytest.fail("read from Milvus"))
            assert store.candidate_rows([product_id], vectors=False) == expected
        write(res.products, res, product, active=False)  # another process: seen at the next scan
        assert store.candidate_rows([product_id], vectors=False)[product_id]["active"] is True
        store.flags.refresh()
        assert store.candidate_rows([product_id], vectors=False)[product_id]["active"] is False
        write(store, res, product, category="Elsewhere")  # its own write: at once
        assert store.candidate_rows([product_id], vectors=False)[product_id]["category"] == "Elsewhere"
        res.products.delete(other["product_id"])  # gone for another process: read from Milvus, not found
        store.flags.forget([other["product_id"]])  # (as if the scan had not seen it)
        assert store.candidate_rows([other["product_id"]], vectors=False) == {}
        write(res.products, res, other)  # added by another process since the scan: read from Milvus
        assert store.candidate_rows([other["product_id"]], vectors=False)[other["product_id"]]["active"] is True
    finally:
        store.flags.stop()
        write(res.products, res, product)
        write(res.products, res, other)


def test_a_catalogue_above_product_flags_max_is_read_from_milvus(res, catalog):
    product = active_products(catalog)[4]
    store = products_of_another_process(res, product_flags_max=1, product_cache_size=0)
    store.flags.refresh()
    try:
        assert store.flags.get([product["product_id"]]) is None
        write(res.products, res, product, active=False)
        assert store.candidate_rows([product["product_id"]], vectors=False)[product["product_id"]]["active"] is False
    finally:
        store.flags.stop()
        write(res.products, res, product)
