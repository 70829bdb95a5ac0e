"""Bad input on every endpoint: the exact 4xx status, a JSON error naming the code and the offending field, and
nothing stored (products, events, user vectors, training jobs) changed."""
import pytest
from werkzeug.exceptions import HTTPException

from app import MAX_REQUEST_BYTES

PRODUCT = {"product_id": "t-bad-1", "name": "Breville Glass Electric Kettle 1.7L", "price": 49.99}
KNOWN_PRODUCT = "P0000001"  # in the session's mock catalogue
EVENT = {"user_id": "t-bad-user", "product_id": KNOWN_PRODUCT, "event_type": "view"}


def case(method, path, status, code, field=None, *, name, **request):
    return pytest.param(method, path, request, status, code, field, id=name)


def search(status, code, field, *, name, **params):
    return case("get", "/search", status, code, field, name=f"search-{name}", query_string={"q": "shoes", **params})


def post_products(body, status, code, field=None, *, name):
    return case("post", "/products", status, code, field, name=f"post-products-{name}", json=body)


def post_events(body, status, code, field=None, *, name):
    return case("post", "/events", status, code, field, name=f"post-events-{name}", json=body)


def recommendations(params, status, code, field, *, name, user="t-bad-user"):
    return case("get", f"/users/{user}/recommendations", status, code, field, name=f"recommendations-{name}",
                query_string=params)


def post_train(body, status, code, field=None, *, name):
    return case("post", "/train", status, code, field, name=f"post-train-{name}", json=body)


CASES = [
    # GET /search
    case("get", "/search", 422, "invalid_field", "q", name="search-missing-q"),
    search(422, "invalid_field", "q", q="", name="empty-q"),
    search(422, "invalid_field", "q", q="   ", name="blank-q"),
    search(422, "invalid_field", "q", q="x" * 513, name="long-q"),
    search(422, "invalid_field", "limit", limit=0, name="limit-0"),
    search(422, "invalid_field", "limit", limit=101, name="limit-101"),
    search(422, "invalid_field", "limit", limit="ten", name="limit-text"),
    search(422, "invalid_field", "limit", limit="1.5", name="limit-fraction"),
    search(422, "invalid_field", "offset", offset=-1, name="offset-negative"),
    search(422, "invalid_field", "offset", offset=1001, name="offset-too-deep"),
    search(422, "invalid_field", "mode", mode="fuzzy", name="mode-unknown"),
    search(422, "invalid_field", "fusion", fusion="max", name="fusion-unknown"),
    search(422, "invalid_field", "dense_weight", dense_weight=1.5, name="dense-weight-above-1"),
    search(422, "invalid_field", "dense_weight", dense_weight=-0.1, name="dense-weight-negative"),
    search(422, "invalid_field", "dense_weight", dense_weight="nan", name="dense-weight-nan"),
    search(422, "invalid_field", "min_price", min_price=-1, name="min-price-negative"),
    search(422, "invalid_field", "max_price", max_price="inf", name="max-price-infinite"),
    search(422, "invalid_field", "max_price", min_price=50, max_price=10, name="min-above-max"),
    search(422, "invalid_field", "category", category="c" * 129, name="category-long"),
    search(422, "invalid_field", "category", category="", name="category-empty"),
    search(422, "invalid_field", "brand", brand="Nike\x01", name="brand-control-character"),
    search(422, "invalid_field", "active", active="maybe", name="active-unknown"),
    search(422, "invalid_field", "explain", explain="perhaps", name="explain-not-bool"),
    search(422, "invalid_field", "user_id", user_id="bad id!", name="user-id-charset"),
    search(422, "invalid_field", "user_id", user_id="u" * 65, name="user-id-long"),
    search(422, "invalid_field", "sort", sort="cheapest", name="sort-unknown"),
    search(422, "invalid_field", "sort", sort="", name="sort-empty"),
    search(422, "invalid_field", "sort", sort="price_asc", user_id="u1", name="sort-with-user-id"),
    search(422, "invalid_field", "facets", facets="some", name="facets-not-bool"),
    search(400, "unknown_parameter", "colour", colour="red", name="unknown-parameter"),
    case("get", "/search?q=a&q=b", 400, "repeated_parameter", "q", name="search-repeated-parameter"),
    # POST /products
    case("post", "/products", 400, "invalid_json", name="post-products-malformed-json",
         data="{", content_type="application/json"),
    case("post", "/products", 415, "unsupported_media_type", name="post-products-form-body",
         data="name=x", content_type="application/x-www-form-urlencoded"),
    case("post", "/products", 415, "unsupported_media_type", name="post-products-no-body"),
    case("post", "/products", 413, "body_too_large", name="post-products-body-over-limit",
         data=b"[" + b" " * MAX_REQUEST_BYTES + b"]", content_type="application/json"),
    post_products([], 422, "empty_batch", name="empty-list"),
    post_products("kettle", 422, "invalid_body", name="json-string"),
    post_products([7], 422, "invalid_field", "0", name="list-of-numbers"),
    post_products({**PRODUCT, "product_id": "bad id!"}, 422, "invalid_field", "product_id", name="id-charset"),
    post_products({**PRODUCT, "product_id": "p" * 65}, 422, "invalid_field", "product_id", name="id-long"),
    post_products({"name": "x"}, 422, "invalid_field", "product_id", name="id-missing"),
    post_products({**PRODUCT, "name": ""}, 422, "invalid_field", "name", name="name-empty"),
    post_products({**PRODUCT, "name": "Kettle\x00"}, 422, "invalid_field", "name", name="name-control-character"),
    post_products({**PRODUCT, "description": "d" * 4001}, 422, "invalid_field", "description", name="description-long"),
    post_products({**PRODUCT, "price": "cheap"}, 422, "invalid_field", "price", name="price-text"),
    post_products({**PRODUCT, "rating": 6}, 422, "invalid_field", "rating", name="rating-above-5"),
    post_products({**PRODUCT, "colour": "red"}, 422, "invalid_field", "colour", name="unknown-field"),
    post_products({**PRODUCT, "skus": [{"sku": "s1", "price": 1, "stock": -1}]}, 422, "invalid_field",
                  "skus.0.stock", name="sku-stock-negative"),
    post_products([PRODUCT, {**PRODUCT, "product_id": "t-bad-2", "price": -3}], 422, "invalid_field", "1.price",
                  name="second-of-batch-bad"),
    post_products([PRODUCT, PRODUCT], 422, "duplicate_product_id", "1.product_id", name="duplicate-ids"),
    post_products([{**PRODUCT, "product_id": f"t-bad-{i}"} for i in range(1001)], 413, "batch_too_large",
                  name="batch-over-1000"),
    # GET / DELETE /products/<id>, GET /products/<id>/similar
    case("get", "/products/" + "p" * 65, 422, "invalid_field", "product_id", name="get-product-id-long"),
    case("get", "/products/bad$id", 422, "invalid_field", "product_id", name="get-product-id-charset"),
    case("get", "/products/t-no-such-product", 404, "product_not_found", name="get-product-missing"),
    case("get", f"/products/{KNOWN_PRODUCT}", 400, "unknown_parameter", "fields", name="get-product-unknown-parameter",
         query_string={"fields": "name"}),
    case("delete", "/products/t-no-such-product", 404, "product_not_found", name="delete-product-missing"),
    case("delete", "/products/a%20b", 422, "invalid_field", "product_id", name="delete-product-id-charset"),
    case("get", "/products/t-no-such-product/similar", 404, "product_not_found", name="similar-missing"),
    case("get", f"/products/{KNOWN_PRODUCT}/similar", 422, "invalid_field", "limit", name="similar-limit-0",
         query_string={"limit": 0}),
    case("get", f"/products/{KNOWN_PRODUCT}/similar", 422, "invalid_field", "max_price", name="similar-min-above-max",
         query_string={"min_price": 10, "max_price": 5}),
    case("get", f"/products/{KNOWN_PRODUCT}/similar", 400, "unknown_parameter", "q", name="similar-unknown-parameter",
         query_string={"q": "shoes"}),
    # POST /events
    case("post", "/events", 415, "unsupported_media_type", name="post-events-text-body",
         data="view", content_type="text/plain"),
    case("post", "/events", 422, "invalid_body", name="post-events-json-null", data="null",
         content_type="application/json"),
    post_events([], 422, "empty_batch", name="empty-list"),
    post_events({**EVENT, "event_type": "click"}, 422, "invalid_field", "event_type", name="type-unknown"),
    post_events([{**EVENT, "event_type": "rating"}], 422, "invalid_field", "0.rating", name="rating-missing"),
    post_events({**EVENT, "rating": 3}, 422, "invalid_field", "rating", name="rating-on-view"),
    post_events({**EVENT, "event_type": "rating", "rating": 6}, 422, "invalid_field", "rating", name="rating-above-5"),
    post_events({**EVENT, "event_type": "rating", "rating": True}, 422, "invalid_field", "rating", name="rating-bool"),
    post_events({**EVENT, "event_type": "rating", "rating": "4"}, 422, "invalid_field", "rating", name="rating-text"),
    post_events({**EVENT, "user_id": "bad user"}, 422, "invalid_field", "user_id", name="user-id-charset"),
    post_events({**EVENT, "user_id": 42}, 422, "invalid_field", "user_id", name="user-id-number"),
    post_events({**EVENT, "event_id": "e" * 65}, 422, "invalid_field", "event_id", name="event-id-long"),
    post_events({"product_id": KNOWN_PRODUCT, "event_type": "view"}, 422, "invalid_field", "user_id",
                name="user-id-missing"),
    post_events({**EVENT, "timestamp": "yesterday"}, 422, "invalid_field", "timestamp", name="timestamp-text"),
    post_events([{**EVENT, "timestamp": "2099-01-01T00:00:00Z"}], 422, "invalid_field", "0.timestamp",
                name="timestamp-future"),
    post_events({**EVENT, "timestamp": "1969-12-31T23:59:59Z"}, 422, "invalid_field", "timestamp",
                name="timestamp-before-1970"),
    post_events({**EVENT, "source": "web"}, 422, "invalid_field", "source", name="unknown-field"),
    post_events([EVENT, {**EVENT, "product_id": "t-no-such-product"}], 422, "unknown_product", "1.product_id",
                name="unknown-product-in-batch"),
    post_events([EVENT] * 1001, 413, "batch_too_large", name="batch-over-1000"),
    # GET /users, /users/<id>, /users/<id>/recommendations
    case("get", "/users", 422, "invalid_field", "limit", name="users-limit-0", query_string={"limit": 0}),
    case("get", "/users", 400, "unknown_parameter", "since", name="users-unknown-parameter",
         query_string={"since": "2026-01-01"}),
    case("get", "/users/t-nobody-here", 404, "user_not_found", name="user-unknown"),
    case("get", "/users/bad%20user", 422, "invalid_field", "user_id", name="user-id-charset"),
    case("get", "/users/t-bad-user", 400, "unknown_parameter", "limit", name="user-unknown-parameter",
         query_string={"limit": 5}),
    recommendations({"strategy": "magic"}, 422, "invalid_field", "strategy", name="strategy-unknown"),
    recommendations({"limit": 0}, 422, "invalid_field", "limit", name="limit-0"),
    recommendations({"limit": 101}, 422, "invalid_field", "limit", name="limit-101"),
    recommendations({"weights": "content:-1"}, 422, "invalid_field", "weights", name="weights-negative"),
    recommendations({"weights": "magic:1"}, 422, "invalid_field", "weights", name="weights-unknown-source"),
    recommendations({"weights": "content:0,popular:0"}, 422, "invalid_field", "weights", name="weights-all-zero"),
    recommendations({"weights": "content"}, 422, "invalid_field", "weights", name="weights-without-number"),
    recommendations({"weights": "item:-1,similar:1"}, 422, "invalid_field", "weights", name="weights-item-negative"),
    recommendations({"weights": "trending:x"}, 422, "invalid_field", "weights", name="weights-not-a-number"),
    recommendations({"exclude": "magic"}, 422, "invalid_field", "exclude", name="exclude-unknown"),
    recommendations({"exclude": "viewed,bought"}, 422, "invalid_field", "exclude", name="exclude-one-unknown"),
    recommendations({"exclude": "none,viewed"}, 422, "invalid_field", "exclude", name="exclude-none-and-more"),
    recommendations({"exclude": ""}, 422, "invalid_field", "exclude", name="exclude-empty"),
    recommendations({"cold_start": "random"}, 422, "invalid_field", "cold_start", name="cold-start-unknown"),
    recommendations({"blend": "magic"}, 422, "invalid_field", "blend", name="blend-unknown"),
    recommendations({"exclude_purchased": "perhaps"}, 422, "invalid_field", "exclude_purchased",
                    name="exclude-not-bool"),
    recommendations({"category": "Books\n"}, 422, "invalid_field", "category", name="category-control-character"),
    recommendations({}, 422, "invalid_field", "user_id", name="user-id-long", user="u" * 65),
    # GET /popular, /popular/categories, /facets, /health, /status, /openapi.json, /metrics
    case("get", "/popular", 422, "invalid_field", "limit", name="popular-limit-101", query_string={"limit": 101}),
    case("get", "/popular", 422, "invalid_field", "category", name="popular-category-empty",
         query_string={"category": ""}),
    case("get", "/popular", 400, "unknown_parameter", "brand", name="popular-unknown-parameter",
         query_string={"brand": "Nike"}),
    case("get", "/popular/categories", 422, "invalid_field", "limit", name="popular-categories-limit-negative",
         query_string={"limit": -5}),
    case("get", "/popular/categories", 400, "unknown_parameter", "category", name="popular-categories-category",
         query_string={"category": "Books"}),
    case("get", "/facets", 400, "unknown_parameter", "field", name="facets-unknown-parameter",
         query_string={"field": "brand"}),
    case("get", "/health", 400, "unknown_parameter", "verbose", name="health-unknown-parameter",
         query_string={"verbose": 1}),
    case("get", "/status", 400, "unknown_parameter", "verbose", name="status-unknown-parameter",
         query_string={"verbose": 1}),
    case("get", "/openapi.json", 400, "unknown_parameter", "format", name="openapi-unknown-parameter",
         query_string={"format": "yaml"}),
    case("get", "/metrics", 400, "unknown_parameter", "name[]", name="metrics-unknown-parameter",
         query_string={"name[]": "events_ingested_total"}),
    # POST /train, GET /train, GET /train/<job_id>
    case("post", "/train", 400, "invalid_json", name="post-train-malformed-json", data="{",
         content_type="application/json"),
    case("post", "/train", 415, "unsupported_media_type", name="post-train-form-body", data="epochs=2",
         content_type="application/x-www-form-urlencoded"),
    post_train([1], 422, "invalid_body", name="list-body"),
    post_train({"epochs": 0}, 422, "invalid_field", "epochs", name="epochs-0"),
    post_train({"epochs": "2"}, 422, "invalid_field", "epochs", name="epochs-text"),
    post_train({"lr": 0}, 422, "invalid_field", "lr", name="lr-0"),
    post_train({"layers": [16, 2]}, 422, "invalid_field", "layers.1", name="layer-too-small"),
    post_train({"momentum": 0.9}, 422, "invalid_field", "momentum", name="unknown-hyper-parameter"),
    post_train({"model": "lambdamart"}, 422, "invalid_field", "model", name="unknown-model"),
    post_train({"model": ["ranker"]}, 422, "invalid_field", "model", name="model-list"),
    post_train({"model": "ranker", "epochs": 2}, 422, "not_a_ranker_parameter", "epochs", name="ranker-with-epochs"),
    post_train({"model": "ranker"}, 409, "not_enough_feedback", "model", name="ranker-without-feedback"),
    case("get", "/train", 400, "unknown_parameter", "limit", name="train-list-unknown-parameter",
         query_string={"limit": 5}),
    case("get", "/train/not-a-job", 422, "invalid_field", "job_id", name="job-id-not-hex"),
    case("get", "/train/" + "A" * 32, 422, "invalid_field", "job_id", name="job-id-upper-case"),
    case("get", "/train/" + "0" * 32, 404, "job_not_found", name="job-unknown"),
    # POST /experiments, GET /experiments/<id>[/results], POST /experiments/<id>/stop; attribution of events
    case("post", "/experiments", 422, "invalid_shares", "variants", name="experiment-shares-overlap",
         json={"name": "x", "surface": "search", "variants": [{"name": "a", "share": 0.6}, {"name": "b", "share": 0.6}]}),
    case("post", "/experiments", 400, "unknown_parameter", "variants.1.params.colour", name="experiment-unknown-param",
         json={"name": "x", "surface": "search", "variants": [{"name": "a", "share": 0.5},
                                                              {"name": "b", "share": 0.5, "params": {"colour": 1}}]}),
    case("get", "/experiments", 400, "unknown_parameter", "status", name="experiments-list-unknown-parameter",
         query_string={"status": "running"}),
    case("get", "/experiments/not-an-id", 422, "invalid_field", "experiment_id", name="experiment-id-not-hex"),
    case("get", "/experiments/" + "0" * 32 + "/results", 404, "experiment_not_found", name="experiment-results-unknown"),
    case("post", "/experiments/" + "0" * 32 + "/stop", 404, "experiment_not_found", name="experiment-stop-unknown"),
    post_events({**EVENT, "attribution": {"request_id": "0" * 32, "position": 1}}, 422, "unknown_request_id",
                "attribution.request_id", name="attribution-unknown-request"),
    search(422, "invalid_field", "ranker", ranker="maybe", name="ranker-not-bool"),
    # routing
    case("get", "/nowhere", 404, "not_found", name="route-unknown"),
    case("get", "/products/", 404, "not_found", name="route-empty-product-id"),
    case("get", "/products/a/b", 404, "not_found", name="route-nested-product-id"),
    case("put", "/search", 405, "method_not_allowed", name="method-put-search"),
    case("post", "/health", 405, "method_not_allowed", name="method-post-health"),
    case("delete", "/users/t-bad-user", 405, "method_not_allowed", name="method-delete-user"),
    case("patch", f"/products/{KNOWN_PRODUCT}", 405, "method_not_allowed", name="method-patch-product"),
]


@pytest.fixture
def stored(res):
    """What the service has stored: products, events, user vectors and training jobs."""
    def counts():
        return {"products": res.products.count(), "events": res.events.count_events(), "users": res.users.count(),
                "training_jobs": len(res.training_jobs.latest(10_000))}
    return counts


@pytest.mark.parametrize("method, path, request_kwargs, status, code, field", CASES)
def test_bad_input_is_a_json_4xx_naming_the_field_and_stores_nothing(
    client, stored, method, path, request_kwargs, status, code, field
):
    before = stored()
    response = getattr(client, method)(path, **request_kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == code
    assert error.get("field") == field
    assert error["message"] and "Traceback" not in error["message"]
    assert set(error) <= {"code", "message", "field"}
    assert stored() == before


def test_the_battery_covers_every_operation_of_the_api(app, client):
    documented = {entry["operationId"] for path in client.get("/openapi.json").json["paths"].values()
                  for entry in path.values()}
    routes = app.url_map.bind("localhost")
    exercised = set()
    for method, path, *_ in (param.values for param in CASES):
        try:
            exercised.add(routes.match(path.split("?")[0], method=method.upper())[0])
        except HTTPException:  # the routing cases: no such route or method
            pass
    assert documented <= exercised
    assert len(CASES) >= 60


def test_a_405_names_the_allowed_methods(client):
    response = client.put("/search")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}

