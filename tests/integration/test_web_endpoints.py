"""What the web page needs from the service: the page itself, GET /facets and GET /users (recently active)."""
from collections import Counter


def test_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    html = page.get_data(as_text=True)
    for asset in ("static/app.js", "static/style.css"):
        assert f'"{asset}"' in html and client.get(f"/{asset}").status_code == 200


def test_facets_count_the_active_products(client, catalog):
    body = client.get("/facets").json
    active = [product for product in catalog if product["active"]]
    for field, plural in (("category", "categories"), ("brand", "brands")):
        counts = Counter(product[field] for product in active)
        assert body[plural] == [{"value": value, "count": counts[value]} for value in sorted(counts)]


def test_users_lists_the_most_recently_active_first(client, catalog):
    product_id = catalog[0]["product_id"]
    for user_id in ("web-first", "web-second", "web-second"):
        event = {"user_id": user_id, "product_id": product_id, "event_type": "view"}
        assert client.post("/events", json=event).status_code == 200
    listed = client.get("/users", query_string={"limit": 2}).json["results"]
    assert [(user["user_id"], user["events"]) for user in listed] == [("web-second", 2), ("web-first", 1)]
    assert client.get("/users", query_string={"limit": 0}).json["error"]["field"] == "limit"
