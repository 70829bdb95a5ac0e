"""Prometheus metrics, served at GET /metrics: HTTP requests and their latency per endpoint and the events
ingested (recorded here), Milvus call latency (app/storage/milvus_metrics.py) and the models each process
serves (app/core/model_metrics.py).

Under gunicorn, gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers
start: prometheus-client then keeps each process's values in files there, and /metrics, whichever worker
answers it, adds up every worker's (a dead worker's counters still count; its gauges no longer do).
Without that variable (one process, the Flask test client) the process's own values are served.
"""
from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess,
)

from app.api.requests import operation
from app.core.model_metrics import record_served_model
from app.storage.milvus_metrics import LATENCY_BUCKETS

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ENDPOINT = "<unmatched>"  # requests no route matched (404, 405): one label, whatever their path

REQUESTS = Counter("http_requests_total", "HTTP requests answered, by endpoint (URL rule), method and status",
                   ["endpoint", "method", "status"])
REQUEST_SECONDS = Histogram("http_request_duration_seconds", "Time to answer an HTTP request, by endpoint and method",
                            ["endpoint", "method"], buckets=LATENCY_BUCKETS)
EVENTS_INGESTED = Counter("events_ingested_total", "Events posted to POST /events, by result (accepted, duplicate)",
                          ["result"])

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@operation({200: str}, media_type="text/plain")
def metrics():
    """Prometheus metrics of every worker, in the text exposition format."""
    return Response(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    if not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def init_app(app: Flask, embedding_model: str) -> None:
    """Serve /metrics and time every request of `app`."""
    app.register_blueprint(bp)
    app.before_request(_start_timer)
    app.after_request(_record_request)
    record_served_model("embedding", embedding_model)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _record_request(response: Response) -> Response:
    endpoint = request.url_rule.rule if request.url_rule else UNMATCHED_ENDPOINT
    REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    if "metrics_started" in g:
        REQUEST_SECONDS.labels(endpoint, request.method).observe(time.perf_counter() - g.metrics_started)
    return response


def record_events(accepted: int, duplicates: int) -> None:
    EVENTS_INGESTED.labels("accepted").inc(accepted)
    EVENTS_INGESTED.labels("duplicate").inc(duplicates)
