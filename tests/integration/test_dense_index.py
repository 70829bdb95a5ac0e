"""The products' dense index: what Milvus Lite builds for each INDEX_TYPE, and replacing it in place."""
from __future__ import annotations

import numpy as np
import pytest

from app.config.settings import Settings
from app.storage.milvus_filters import ProductFilter
from app.storage.products import DENSE_FIELD, TEXT_FIELD, ProductStore, connect
from tests.helpers import run_module, service_env

DIMENSION = 8


def product_rows(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [{
        "product_id": f"p{i}", "name": f"product {i}", "description": "", "brand": "b", "category": "c",
        "sub_category": "s", "price": 1.0, "rating": 4.0, "rating_count": 1, "sold_count": 1, "active": True,
        "skus": [], "created_at": 0, TEXT_FIELD: f"product {i}", DENSE_FIELD: vector.tolist(),
    } for i, vector in enumerate(vectors)]


def open_store(data_dir, index_type: str, dimension: int = DIMENSION) -> ProductStore:
    settings = Settings.from_env({}, data_dir=data_dir, index_type=index_type)
    store = ProductStore(connect(settings), settings, dimension)
    store.ensure_collection()
    return store


@pytest.mark.parametrize("index_type, built", [("HNSW", "FLAT"), ("IVF_FLAT", "IVF_FLAT"), ("FLAT", "FLAT")])
def test_lite_builds_the_requested_index_or_its_approximate_stand_in(tmp_path, index_type, built):
    store = open_store(tmp_path, index_type)
    try:
        assert store.dense_index_type == built
        assert store.client.describe_index(store.collection, DENSE_FIELD)["index_type"] == built
    finally:
        store.client.close()


def test_the_dense_index_ranks_by_inner_product_and_scores_a_cosine(tmp_path):
    """IP (the product vectors are unit length); a query of any length is scored by its cosine."""
    rows = product_rows(100)
    store = open_store(tmp_path, "HNSW")
    try:
        store.upsert(rows)
        assert store.client.describe_index(store.collection, DENSE_FIELD)["metric_type"] == "IP"
        query = np.asarray(rows[7][DENSE_FIELD], dtype=np.float32)
        exact = np.argsort(-np.array([row[DENSE_FIELD] for row in rows]) @ query)[:5]
        hits = store.nearest(3.0 * query, 5, ProductFilter())
        assert [hit.product["product_id"] for hit in hits] == [f"p{i}" for i in exact]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        store.client.close()


def test_a_cosine_index_of_an_older_collection_is_searched_until_rebuilt(tmp_path, caplog):
    rows = product_rows(100)
    store = open_store(tmp_path, "FLAT")
    store.upsert(rows)
    store.client.release_collection(store.collection)
    store.client.drop_index(store.collection, DENSE_FIELD)
    index = store.client.prepare_index_params()
    index.add_index(DENSE_FIELD, index_type="FLAT", metric_type="COSINE")  # as collections were made before IP
    store.client.create_index(store.collection, index)
    store.client.close()

    store = open_store(tmp_path, "FLAT")
    try:
        assert store.dense_metric == "COSINE"
        assert "rebuild-dense-index" in caplog.text
        query = np.asarray(rows[3][DENSE_FIELD], dtype=np.float32)
        assert store.nearest(query, 1, ProductFilter())[0].product["product_id"] == "p3"
        store.rebuild_dense_index()
        assert store.dense_metric == "IP"
        assert store.nearest(query, 1, ProductFilter())[0].product["product_id"] == "p3"
    finally:
        store.client.close()


def test_rebuild_replaces_the_index_and_keeps_every_row(tmp_path):
    rows = product_rows(300)
    store = open_store(tmp_path, "FLAT")
    store.upsert(rows)
    store.flush()
    store.client.close()

    store = open_store(tmp_path, "IVF_FLAT")  # INDEX_TYPE changed: the old index stays until rebuilt
    try:
        assert store.dense_index_type == "FLAT"
        assert store.rebuild_dense_index() == "IVF_FLAT"
        assert store.client.describe_index(store.collection, DENSE_FIELD)["index_type"] == "IVF_FLAT"
        assert store.count() == 300
        query = np.asarray(rows[42][DENSE_FIELD], dtype=np.float32)
        assert store.nearest(query, 1, ProductFilter())[0].product["product_id"] == "p42"
    finally:
        store.client.close()


def test_a_missing_dense_index_is_created_on_start(tmp_path):
    store = open_store(tmp_path, "FLAT")
    store.upsert(product_rows(50))
    store.client.release_collection(store.collection)
    store.client.drop_index(store.collection, DENSE_FIELD)  # as a rebuild stopped between drop and create
    store.client.close()

    store = open_store(tmp_path, "FLAT")
    try:
        assert store.dense_index_type == "FLAT"
        assert store.count() == 50
    finally:
        store.client.close()


def test_cli_rebuilds_the_dense_index_to_index_type(tmp_path):
    """The store made with the default INDEX_TYPE (FLAT on Lite), then INDEX_TYPE=IVF_FLAT and a rebuild."""
    for command, env in (("init-db", {}), ("rebuild-dense-index", {"INDEX_TYPE": "IVF_FLAT"})):
        done = run_module("app.ops.cli", command, env=service_env(tmp_path, **env), timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    assert "the dense index of 'products' is IVF_FLAT" in done.stdout
    store = open_store(tmp_path, "IVF_FLAT", dimension=384)
    try:
        assert store.dense_index_type == "IVF_FLAT"
    finally:
        store.client.close()
