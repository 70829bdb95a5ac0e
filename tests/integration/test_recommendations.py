"""Recommendations and popularity through the API, on the seeded mock catalogue."""
import time

from app.core.recommend import Recommender
from app.storage.milvus_filters import ProductFilter
from tests.integration.test_events import active_products


def post(client, user_id, products, event_type="view"):
    events = [{"user_id": user_id, "product_id": p["product_id"], "event_type": event_type} for p in products]
    response = client.post("/events", json=events)
    assert response.status_code == 200, response.json


def recommend(client, user_id, **params):
    response = client.get(f"/users/{user_id}/recommendations", query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def test_nike_running_shoe_fan_gets_sports_nike_items_from_content(client, catalog):
    shoes = active_products(catalog, brand="Nike", sub_category="running shoes")
    assert shoes
    post(client, "rec-nike-fan", shoes)
    post(client, "rec-nike-fan", shoes, "add_to_cart")
    body = recommend(client, "rec-nike-fan", strategy="content", limit=5)
    assert body["strategy"] == "content" and body["cold_start"] is False
    top = body["results"]
    assert len(top) == 5 and all(item["category"] == "Sports" for item in top)
    assert sum(item["brand"] == "Nike" or item["sub_category"] == "running shoes" for item in top) >= 4
    assert all(item["scores"]["content"] is not None for item in top)


def test_purchased_items_never_come_back(client, catalog):
    laptops = active_products(catalog, sub_category="laptop")[:3]
    post(client, "rec-buyer", laptops, "purchase")
    purchased = {p["product_id"] for p in laptops}
    for strategy in ("hybrid", "content", "popular"):
        ids = {item["product_id"] for item in recommend(client, "rec-buyer", strategy=strategy, limit=50)["results"]}
        assert ids and not ids & purchased, strategy
    with_purchased = recommend(client, "rec-buyer", strategy="content", limit=5, exclude_purchased="false")
    assert {item["product_id"] for item in with_purchased["results"]} & purchased


def test_new_user_gets_popular_items_as_cold_start(client, res, catalog):
    post(client, "rec-popular-maker", active_products(catalog, sub_category="coffee")[:3], "purchase")
    body = recommend(client, "rec-never-seen", limit=5)
    assert body["strategy"] == "popular" and body["cold_start"] is True and body["requested_strategy"] == "hybrid"
    ids = [item["product_id"] for item in body["results"]]
    counts = res.events.popularity_of(ids, all_time=True)
    assert [counts[product_id] for product_id in ids] == sorted(counts.values(), reverse=True)  # all-time counts
    trending = recommend(client, "rec-never-seen", limit=5, cold_start="trending")
    assert trending["strategy"] == "trending" and trending["cold_start"] is True
    popular = client.get("/popular", query_string={"limit": 5}).json["results"]
    assert [item["product_id"] for item in trending["results"]] == [item["product_id"] for item in popular]
    scores = [item["popularity"] for item in popular]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_popular_by_category_and_categories(client, catalog):
    post(client, "rec-toy-fan", active_products(catalog, category="Toys")[:5], "add_to_cart")
    toys = client.get("/popular", query_string={"category": "Toys", "limit": 5}).json["results"]
    assert toys and all(item["category"] == "Toys" for item in toys)
    categories = client.get("/popular/categories").json["results"]
    assert "Toys" in [row["category"] for row in categories]


def test_inactive_products_are_never_returned(client, catalog):
    product = active_products(catalog, sub_category="tea")[0]
    post(client, "rec-tea-fan", [product] * 1, "purchase")
    post(client, "rec-tea-fan-2", [product], "purchase")
    assert product["product_id"] in [i["product_id"] for i in client.get("/popular", query_string={"limit": 100}).json["results"]]
    assert client.post("/products", json={**product, "active": False}).status_code == 200
    try:
        popular = client.get("/popular", query_string={"limit": 100}).json["results"]
        assert product["product_id"] not in [item["product_id"] for item in popular]
        recs = recommend(client, "rec-tea-fan-3", limit=100)["results"]
        assert product["product_id"] not in [item["product_id"] for item in recs]
    finally:
        client.post("/products", json=product)


def test_weights_change_the_order(client, res, catalog):
    post(client, "rec-weights", active_products(catalog, sub_category="yoga mat")[:3])
    content_heavy = recommend(client, "rec-weights", weights="content:1,popular:0", limit=10)
    popular_heavy = recommend(client, "rec-weights", weights="content:0.01,popular:1", limit=10)
    assert content_heavy["weights"] == {"content": 1.0}
    assert [i["product_id"] for i in content_heavy["results"]] != [i["product_id"] for i in popular_heavy["results"]]
    scores = [item["scores"]["popular"] or 0.0 for item in popular_heavy["results"]]
    assert scores[0] == max(scores) > 0
    default = recommend(client, "rec-weights")
    assert default["strategy"] == "hybrid"
    # A new user: no collaborative score; item-to-item only when a model (trained by an earlier test) is served
    personal = {"content", "similar", "popular", "trending"} | ({"item"} if res.served_model.version else set())
    configured = {source: weight for source, weight in res.settings.recommendation_source_weights.items()
                  if source in personal and weight > 0}
    assert default["weights"] == {source: round(weight / sum(configured.values()), 6)
                                  for source, weight in configured.items()}
    assert all(item["scores"]["collaborative"] is None for item in default["results"])


def test_bad_recommendation_parameters(client):
    for params, field in [({"strategy": "magic"}, "strategy"), ({"limit": 0}, "limit"),
                          ({"weights": "content:-1"}, "weights"), ({"weights": "magic:1"}, "weights"),
                          ({"weights": "content:0,popular:0"}, "weights"), ({"exclude_purchased": "perhaps"}, "exclude_purchased")]:
        response = client.get("/users/anyone/recommendations", query_string=params)
        assert response.status_code == 422 and response.json["error"]["field"] == field, params


class CountingEvents:
    """The real event store, counting the popularity reads that reach the database."""

    def __init__(self, events):
        self.events, self.popular_reads = events, 0

    def popular_products(self, *args, **kwargs):
        self.popular_reads += 1
        return self.events.popular_products(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.events, name)


def test_popular_candidates_are_cached_per_category_for_popular_cache_seconds(client, res, catalog):
    post(client, "rec-cache-maker", active_products(catalog, category="Books")[:4], "purchase")
    events = CountingEvents(res.events)
    recommender = Recommender(res.products, res.users, events, 100, popular_cache_seconds=1.0)
    books = ProductFilter(category="Books", active=True)
    first = recommender.popular(5, books)
    assert events.popular_reads == 1 and all(p["category"] == "Books" for p in first.values())
    assert "dense" not in next(iter(first.values()))  # only the fields asked for
    leader = next(iter(first))
    without_leader = recommender.popular(5, ProductFilter(category="Books", active=True, exclude_ids=(leader,)))
    assert events.popular_reads == 1  # from the cache, exclusions applied to it
    assert list(without_leader)[:4] == list(first)[1:] and leader not in without_leader
    assert list(recommender.popular(5, books)) == list(first) == list(Recommender(
        res.products, res.users, res.events, 100).popular(5, books))  # the same as read fresh

    newcomer = next(p for p in active_products(catalog, category="Books") if p["product_id"] not in first)
    for buyer in range(8):  # now the most popular book by far
        post(client, f"rec-cache-newcomer-fan-{buyer}", [newcomer], "purchase")
    assert newcomer["product_id"] not in recommender.popular(1, books)  # still the cached order
    time.sleep(1.1)
    assert list(recommender.popular(1, books)) == [newcomer["product_id"]]  # expired: read again
    assert events.popular_reads == 2
