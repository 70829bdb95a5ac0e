"""The service under a real gunicorn on loopback, configured by gunicorn.conf.py."""
import pytest
import requests

from tests.helpers import gunicorn_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    with gunicorn_server(tmp_path / "data", tmp_path / "gunicorn.log") as base_url:
        yield base_url


def test_seed_search_and_errors_through_gunicorn(server):
    products = [
        {"product_id": "g-1", "name": "Garmin Forerunner 265 GPS Running Watch", "brand": "Garmin",
         "category": "Sports", "sub_category": "smartwatch", "price": 449.0},
        {"product_id": "g-2", "name": "Lodge Cast Iron Skillet 12 inch", "brand": "Lodge",
         "category": "Home", "sub_category": "cookware", "price": 39.9},
        {"product_id": "g-3", "name": "Penguin Classics Pride and Prejudice Novel", "brand": "Penguin",
         "category": "Books", "sub_category": "novel", "price": 9.99},
    ]
    response = requests.post(f"{server}/products", json=products, timeout=60)
    assert response.status_code == 200 and response.json()["upserted"] == 3

    hits = requests.get(f"{server}/search", params={"q": "frying pan for cooking"}, timeout=30).json()["results"]
    assert hits[0]["product_id"] == "g-2"
    filtered = requests.get(f"{server}/search", params={"q": "watch", "category": "Books"}, timeout=30).json()
    assert [hit["product_id"] for hit in filtered["results"]] == ["g-3"]

    bad = requests.get(f"{server}/search", params={"q": "x", "limit": 500}, timeout=30)
    assert bad.status_code == 422 and bad.headers["Content-Type"] == "application/json"
    assert requests.get(f"{server}/status", timeout=30).json()["collections"]["products"] == 3
