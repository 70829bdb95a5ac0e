"""Search past its parts: fusion in the service, the English analyzer, the name retriever, sorting and facets
of GET /search, and rebuilding a products collection (an old-schema one included) into today's schema."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from pymilvus import DataType, Function, FunctionType, MilvusClient

from app.config.settings import Settings
from app.storage.fusion import rrf, weighted
from app.storage.milvus_filters import ProductFilter
from app.storage.refine import PRICE_EDGES
from app.storage.products import (
    DENSE_FIELD, NAME_SPARSE_FIELD, PRODUCT_FIELDS, SPARSE_FIELD, TEXT_FIELD, ProductStore, connect,
    product_fields_schema,
)
from tests.helpers import run_module, service_env


def search(client, **params) -> dict:
    response = client.get("/search", query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def ids(body: dict) -> list[str]:
    return [hit["product_id"] for hit in body["results"]]


# ---- fusion -------------------------------------------------------------------------------------------
def test_rrf_sums_reciprocal_ranks_over_the_lists_holding_a_candidate():
    fused = dict(rrf({"a": [("x", 9.0), ("y", 5.0)], "b": [("y", 0.2), ("z", 0.1)]}, k=10))
    assert fused == pytest.approx({"x": 1 / 11, "y": 1 / 12 + 1 / 11, "z": 1 / 12})


def test_fusion_breaks_ties_by_product_id_as_milvus_does():
    assert [pid for pid, _ in rrf({"a": [("p9", 1.0), ("p1", 0.5)], "b": [("p1", 1.0), ("p9", 0.5)]}, k=10)] == [
        "p1", "p9"]


def test_weighted_fusion_adds_cosine_as_it_is_and_lexical_scores_divided_by_their_best():
    lists = {"dense": [("x", 0.6), ("y", 0.5), ("z", 0.3)], "sparse": [("z", 8.0), ("y", 2.0), ("w", 1.0)]}
    fused = weighted(lists, {"dense": 0.8, "sparse": 0.2})
    # w: missing from dense → dense's last cosine (0.3); x: missing from sparse → 0
    assert dict(fused) == pytest.approx({"x": 0.48, "y": 0.4 + 0.05, "z": 0.24 + 0.2, "w": 0.24 + 0.025})
    assert [pid for pid, _ in fused] == ["x", "y", "z", "w"]
    # more lexical weight: the strong BM25 match leads
    assert [pid for pid, _ in weighted(lists, {"dense": 0.5, "sparse": 0.5})] == ["z", "y", "x", "w"]


def test_weighted_fusion_ignores_lists_it_cannot_scale():
    """A retriever without weight, an empty list, or a lexical list whose best score is not positive adds 0."""
    lists = {"dense": [("x", 0.4), ("y", 0.2)], "sparse": [("y", 0.0), ("z", -1.0)], "name": []}
    fused = dict(weighted(lists, {"dense": 0.5, "sparse": 0.25, "name": 0.25, "other": 1.0}))
    assert fused == pytest.approx({"x": 0.2, "y": 0.1, "z": 0.1})  # z: dense's last cosine, nothing else


class CallLog:
    """A Milvus client recording the names of the methods called through it."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name: str):
        self.calls.append(name)
        return getattr(self.client, name)


def test_fusion_setting_is_checked_and_sets_the_default_of_hybrid_search(res, catalog):
    with pytest.raises(ValueError, match="FUSION"):
        Settings.from_env({"FUSION": "max"})
    store, settings = res.products, res.products.settings
    query = res.encoder.encode_query("running shoes")
    for fusion in ("rrf", "weighted"):
        store.settings = settings.model_copy(update={"fusion": fusion})
        store.client = log = CallLog(store.client)
        try:
            default = [hit.product["product_id"] for hit in store.search(query, "running shoes", ProductFilter()).hits]
        finally:
            store.client, store.settings = log.client, settings
        named = store.search(query, "running shoes", ProductFilter(), fusion=fusion).hits
        assert default == [hit.product["product_id"] for hit in named]
        assert ("hybrid_search" in log.calls) == (fusion == "rrf")
        # the page's whole products come with the hits: no primary-key read after the search(es)
        assert "get" not in log.calls and log.calls.count("search") == (2 if fusion == "weighted" else 0)
        stored = store.get(default)
        assert [hit.product for hit in named] == [stored[product_id] for product_id in default]


def tied_groups(ranked: list[tuple[str, float]]) -> list[set[str]]:
    """The ranking as groups of ids whose scores tie within float32 precision (Milvus sums RRF in float32: an
    exact tie of two different rank sums may come out an ulp apart on either side), the last, possibly cut
    by the page, left out."""
    groups: list[set[str]] = []
    for i, (pid, score) in enumerate(ranked):
        if i and abs(score - ranked[i - 1][1]) <= 1e-6 * abs(score):
            groups[-1].add(pid)
        else:
            groups.append({pid})
    return groups[:-1]


@pytest.mark.parametrize("name_retriever, product_filter", [
    (False, ProductFilter()), (False, ProductFilter(category="Fashion", max_price=200)), (True, ProductFilter()),
])
def test_hybrid_rrf_is_one_milvus_hybrid_search_equal_to_rrf_of_the_retrievers_lists(
        res, catalog, name_retriever, product_filter):
    store, settings = res.products, res.products.settings
    names = ["dense", "sparse"] + (["name"] if name_retriever else [])
    store.settings = settings.model_copy(update={"name_retriever": name_retriever})
    try:
        for text in ("running shoes", "apple laptop", "kitchen", "noise cancelling headphones"):
            query = res.encoder.encode_query(text)
            lists = {name: [(hit.product["product_id"], hit.score) for hit in store.search(
                query, text, product_filter, mode=name, limit=settings.hybrid_candidates).hits] for name in names}
            expected = rrf(lists, settings.rrf_k)[:20]
            store.client = log = CallLog(store.client)
            try:
                hits = store.search(query, text, product_filter, fusion="rrf", limit=20).hits
            finally:
                store.client = log.client
            # one call: the page's whole products come with the fused hits (no primary-key read after it)
            assert log.calls.count("hybrid_search") == 1 and "search" not in log.calls and "get" not in log.calls
            found = [(hit.product["product_id"], hit.score) for hit in hits]
            assert tied_groups(found) == tied_groups(expected), text
            assert [score for _, score in found] == pytest.approx([score for _, score in expected], rel=1e-5)
            stored = store.get([pid for pid, _ in expected])
            assert all(hit.product == stored[hit.product["product_id"]] for hit in hits)
            assert all(product_filter.category in (None, hit.product["category"]) for hit in hits)
            explained = store.search(query, text, product_filter, fusion="rrf", limit=20, explain=True).hits
            assert tied_groups([(hit.product["product_id"], hit.score) for hit in explained]) == tied_groups(found)
    finally:
        store.settings = settings


# ---- analyzer and retrievers ------------------------------------------------------------------------
def test_the_name_retriever_joins_hybrid_fusion_when_turned_on(res, catalog):
    store, settings = res.products, res.products.settings
    query = res.encoder.encode_query("apple laptop")
    default = store.search(query, "apple laptop", ProductFilter(), limit=5, explain=True).hits
    assert not settings.name_retriever and set(default[0].retrievers) == {"dense", "sparse"}
    store.settings = settings.model_copy(update={"name_retriever": True})
    try:
        hits = store.search(query, "apple laptop", ProductFilter(), limit=5, explain=True).hits
    finally:
        store.settings = settings
    assert hits[0].product["brand"] == "Apple"
    for hit in hits:
        assert set(hit.retrievers) == {"dense", "sparse", "name"}
        assert any(rank is not None for rank in hit.retrievers.values())
    assert any(hit.retrievers["name"] is not None for hit in hits)


def test_weighted_fusion_defaults_to_the_dense_weight_setting(client, res):
    implicit = search(client, q="noise cancelling headphones", fusion="weighted", limit=20)
    explicit = search(client, q="noise cancelling headphones", fusion="weighted", limit=20,
                      dense_weight=res.settings.dense_weight)
    other = search(client, q="noise cancelling headphones", fusion="weighted", limit=20, dense_weight=0.0)
    assert ids(implicit) == ids(explicit) != ids(other)


# ---- sorting and facets -----------------------------------------------------------------------------
@pytest.mark.parametrize("sort, field, descending", [
    ("price_asc", "price", False), ("price_desc", "price", True), ("rating", "rating", True),
    ("newest", "created_at", True),
])
def test_sorting_reorders_the_best_matches_only(client, res, sort, field, descending):
    candidates = res.settings.sort_candidates
    assert candidates == 100
    relevant = search(client, q="running shoes", limit=100)
    ordered = search(client, q="running shoes", limit=100, sort=sort)
    values = [hit[field] for hit in ordered["results"]]
    assert values == sorted(values, reverse=descending) and len(set(values)) > 1
    assert set(ids(ordered)) == set(ids(relevant))  # the same matched set, another order
    paged = [pid for offset in (0, 10, 20) for pid in ids(search(client, q="running shoes", limit=10,
                                                                   offset=offset, sort=sort))]
    assert paged == ids(ordered)[:30]


def test_sorting_keeps_the_filters(client):
    body = search(client, q="shoes", category="Fashion", sort="price_desc", limit=50)
    assert body["results"] and all(hit["category"] == "Fashion" for hit in body["results"])


def test_facets_count_the_matched_set(client):
    matched = search(client, q="kitchen", limit=100)["results"]
    body = search(client, q="kitchen", limit=5, facets="true")
    assert ids(body) == [hit["product_id"] for hit in matched[:5]]
    facets = body["facets"]
    assert {f["value"]: f["count"] for f in facets["categories"]} == Counter(h["category"] for h in matched)
    assert {f["value"]: f["count"] for f in facets["brands"]} == Counter(h["brand"] for h in matched if h["brand"])
    counts = [f["count"] for f in facets["categories"]]
    assert counts == sorted(counts, reverse=True)
    assert sum(bucket["count"] for bucket in facets["price"]) == len(matched)
    for bucket in facets["price"]:
        upper = float("inf") if bucket["max"] is None else bucket["max"]
        inside = [hit for hit in matched if bucket["min"] <= hit["price"] < upper]
        assert len(inside) == bucket["count"] and bucket["min"] in PRICE_EDGES
    assert "facets" not in search(client, q="kitchen", limit=5)


# ---- an old collection and its rebuild --------------------------------------------------------------
def old_schema(dimension: int):
    """The products schema before TEXT_ANALYZER and the name retriever: lowercase words, no name field."""
    schema = product_fields_schema()
    schema.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=32768, enable_analyzer=True,
                     analyzer_params={"tokenizer": "standard", "filter": ["lowercase"]})
    schema.add_field(DENSE_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                 input_field_names=[TEXT_FIELD], output_field_names=[SPARSE_FIELD]))
    return schema


def test_an_old_collection_is_served_then_rebuilt_without_re_embedding(res, catalog):
    settings = res.settings.model_copy(update={"products_collection": "old_products", "collection_check_seconds": 0,
                                               "name_retriever": True})
    client = res.products.client
    client.create_collection("old_products", schema=old_schema(res.encoder.dimension), consistency_level="Strong")
    sparse_index = MilvusClient.prepare_index_params()
    sparse_index.add_index(SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_index("old_products", sparse_index)
    session = res.products.scan([*PRODUCT_FIELDS, DENSE_FIELD], batch_size=1000)[:300]
    try:
        old = ProductStore(client, settings, res.encoder.dimension)
        old.ensure_collection()
        assert not old.has_name_field and old.retrievers("hybrid") == ["dense", "sparse"]
        old.upsert([{**row, TEXT_FIELD: row["name"], DENSE_FIELD: row[DENSE_FIELD].tolist()} for row in session])
        old.flush()
        query = res.encoder.encode_query("headphones")
        before = old.search(query, "headphones", ProductFilter(), limit=5, explain=True).hits
        assert before and set(before[0].retrievers) == {"dense", "sparse"}

        other_process = ProductStore(client, settings, res.encoder.dimension)
        assert other_process.collection == "old_products"
        source, target, copied = old.rebuild_collection()
        assert (source, target, copied) == ("old_products", "old_products_v2", 300)
        assert other_process.collection == old.collection == "old_products_v2"
        assert other_process.has_name_field and other_process.count() == 300
        stored = other_process.get([session[7]["product_id"]], fields=("product_id", DENSE_FIELD, "skus"))
        assert np.allclose(stored[session[7]["product_id"]][DENSE_FIELD], session[7][DENSE_FIELD])
        assert stored[session[7]["product_id"]]["skus"] == session[7]["skus"]
        after = other_process.search(query, "headphones", ProductFilter(), limit=5, explain=True).hits
        assert after and set(after[0].retrievers) == {"dense", "sparse", "name"}
        assert client.query("old_products", filter="", output_fields=["count(*)"])[0]["count(*)"] == 300  # kept

        assert old.rebuild_collection()[1:] == ("old_products_v3", 300)
        assert other_process.collection == "old_products_v3"
    finally:
        for name in client.list_collections():
            if name.startswith("old_products"):
                client.drop_collection(name)


def test_the_session_collection_has_the_name_retriever(res):
    fields = {f["name"] for f in res.products.client.describe_collection(res.products.collection)["fields"]}
    assert NAME_SPARSE_FIELD in fields and res.products.has_name_field


SEED_ONE_KETTLE = """
from app.config.settings import Settings
from app.storage.milvus_filters import ProductFilter
from app.storage.products import ProductStore, connect
settings = Settings.from_env()
store = ProductStore(connect(settings), settings, 384)
store.ensure_collection()
store.upsert([{"product_id": "k1", "name": "Glass kettles", "description": "", "brand": "", "category": "",
               "sub_category": "", "price": 1.0, "rating": 0.0, "rating_count": 0, "sold_count": 0,
               "active": True, "skus": [], "created_at": 0, "text": "Glass kettles", "dense": [1.0] + [0.0] * 383}])
store.flush()
print(len(store.search(None, "kettle", ProductFilter(), mode="sparse").hits), "found")
"""


def test_cli_rebuilds_the_collection_with_text_analyzer(tmp_path):
    """A store created with TEXT_ANALYZER=standard (one product, in another process: Lite locks its file),
    then the command with TEXT_ANALYZER=english: stems match, stop words match nothing."""
    seeded = subprocess.run([sys.executable, "-c", SEED_ONE_KETTLE], capture_output=True, text=True, timeout=300,
                            env=service_env(tmp_path, TEXT_ANALYZER="standard"))
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    assert "0 found" in seeded.stdout  # lowercase words: "kettle" is not "kettles"

    done = run_module("app.ops.cli", "rebuild-collection", env=service_env(tmp_path, TEXT_ANALYZER="english"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 products copied from 'products' to 'products_v2'" in done.stdout
    settings = Settings.from_env({}, data_dir=tmp_path, text_analyzer="english")
    store = ProductStore(connect(settings), settings, 384)
    try:
        assert store.collection == "products_v2"
        found = store.search(None, "kettle", ProductFilter(), mode="sparse").hits
        assert [hit.product["product_id"] for hit in found] == ["k1"]
        assert not store.search(None, "the and of", ProductFilter(), mode="sparse").hits  # stop words only
    finally:
        store.client.close()
