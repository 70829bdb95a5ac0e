"""Search relevance on the seeded mock catalogue: tests that fail when ranking breaks."""
import math

import pytest

# A small labelled query set: a product is relevant when it matches the predicate.
LABELLED_QUERIES = {
    "running shoes": lambda p: p["sub_category"] == "running shoes",
    "apple laptop": lambda p: p["brand"] == "Apple" and p["sub_category"] == "laptop",
    "noise cancelling headphones": lambda p: p["sub_category"] == "headphones",
    "yoga mat": lambda p: p["sub_category"] == "yoga mat",
    "espresso coffee beans": lambda p: p["sub_category"] == "coffee",
    "green tea": lambda p: p["sub_category"] == "tea",
    "dark chocolate": lambda p: p["sub_category"] == "chocolate",
    "extra virgin olive oil": lambda p: p["sub_category"] == "olive oil",
    "mountain bike": lambda p: p["sub_category"] == "bicycle",
    "tennis racket": lambda p: p["sub_category"] == "tennis racket",
    "denim jeans": lambda p: p["sub_category"] == "jeans",
    "winter jacket": lambda p: p["sub_category"] == "jacket",
    "red lipstick": lambda p: p["sub_category"] == "lipstick",
    "jigsaw puzzle": lambda p: p["sub_category"] == "puzzle",
    "4k television": lambda p: p["sub_category"] == "tv",
    "car battery": lambda p: p["sub_category"] == "car battery",
    "synthetic motor oil": lambda p: p["sub_category"] == "motor oil",
    "whey protein powder": lambda p: p["sub_category"] == "protein powder",
    "recipes cookbook": lambda p: p["sub_category"] == "cookbook",
    "cordless vacuum cleaner": lambda p: p["sub_category"] == "vacuum cleaner",
    "samsung smartphone": lambda p: p["brand"] == "Samsung" and p["sub_category"] == "smartphone",
    "nike sneakers": lambda p: p["brand"] == "Nike" and p["sub_category"] in ("sneakers", "running shoes"),
}


def search(client, q, **params):
    response = client.get("/search", query_string={"q": q, "limit": 10, **params})
    assert response.status_code == 200, response.json
    return response.json["results"]


def ndcg_at_10(results, is_relevant) -> float:
    gains = [1.0 if is_relevant(hit) else 0.0 for hit in results[:10]]
    dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(10))
    return dcg / ideal


def test_running_shoes_finds_sports_running_shoes_in_top_5(client):
    top5 = search(client, "running shoes")[:5]
    assert any(hit["category"] == "Sports" and hit["sub_category"] == "running shoes" for hit in top5)


def test_apple_laptop_ranks_apple_laptops_first(client, catalog):
    assert any(p["brand"] == "Apple" and p["sub_category"] == "laptop" and p["active"] for p in catalog)
    first = search(client, "apple laptop")[0]
    assert first["brand"] == "Apple" and first["sub_category"] == "laptop"


def test_category_filter_excludes_everything_else(client):
    unfiltered = search(client, "running shoes", limit=20)
    assert any(hit["category"] != "Fashion" for hit in unfiltered)
    filtered = search(client, "running shoes", category="Fashion", limit=20)
    assert filtered and all(hit["category"] == "Fashion" for hit in filtered)


def test_sparse_finds_an_exact_model_number_that_dense_misses(client, catalog):
    product = next(p for p in catalog if p["active"] and p["sub_category"] == "headphones")
    model_number = product["description"].rsplit("Model no. ", 1)[1].rstrip(".").rsplit("-", 1)[1]
    assert model_number.isdigit()  # a rare token with no meaning a dense model could pick up
    sparse = search(client, model_number, mode="sparse")
    assert sparse[0]["product_id"] == product["product_id"]
    dense = search(client, model_number, mode="dense")
    assert product["product_id"] not in [hit["product_id"] for hit in dense]
    hybrid = search(client, model_number)
    assert product["product_id"] in [hit["product_id"] for hit in hybrid[:3]]


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_is_never_worse_than_the_worse_retriever(client, fusion):
    """On the labelled set's mean NDCG@10 for both fusions; RRF also on every single query. (Weighted fusion
    adds scores, not ranks: a strong match of one retriever may outweigh both lists' order on a single query.)"""
    scores = {mode: {} for mode in ("hybrid", "dense", "sparse")}
    for query, is_relevant in LABELLED_QUERIES.items():
        for mode in scores:
            scores[mode][query] = ndcg_at_10(search(client, query, mode=mode, fusion=fusion), is_relevant)
    mean = {mode: sum(per_query.values()) / len(per_query) for mode, per_query in scores.items()}
    assert mean["hybrid"] >= min(mean["dense"], mean["sparse"]), mean
    assert mean["hybrid"] >= 0.8, mean
    worse = [q for q in LABELLED_QUERIES if scores["hybrid"][q] < min(scores["dense"][q], scores["sparse"][q])]
    assert fusion == "weighted" or not worse, {q: {m: round(scores[m][q], 3) for m in scores} for q in worse}
