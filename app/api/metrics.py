"""Prometheus metrics, served at GET /metrics: HTTP requests and their latency per endpoint, Milvus call
latency, the models each process serves and the events ingested.

Under gunicorn, gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers
start: prometheus-client then keeps each process's values in files there, and /metrics, whichever worker
answers it, adds up every worker's (a dead worker's counters still count; its gauges no longer do).
Without that variable (one process, the Flask test client) the process's own values are served.
"""
from __future__ import annotations

import os
import time
from functools import wraps

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess,
)

from app.api.requests import operation

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ENDPOINT = "<unmatched>"  # requests no route matched (404, 405): one label, whatever their path

REQUESTS = Counter("http_requests_total", "HTTP requests answered, by endpoint (URL rule), method and status",
                   ["endpoint", "method", "status"])
REQUEST_SECONDS = Histogram("http_request_duration_seconds", "Time to answer an HTTP request, by endpoint and method",
                            ["endpoint", "method"], buckets=LATENCY_BUCKETS)
MILVUS_SECONDS = Histogram("milvus_call_duration_seconds", "Duration of Milvus client calls, by client method",
                           ["method"], buckets=LATENCY_BUCKETS)
SERVED_MODELS = Gauge("served_model_info", "1 for each model a live process serves, by kind (embedding, ncf) and name",
                      ["kind", "name"], multiprocess_mode="livemax")
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


def record_served_model(kind: str, name: str, replaced: str | None = None) -> None:
    """This process now serves model `name` of `kind`, instead of `replaced` if given."""
    if replaced and replaced != name:
        SERVED_MODELS.labels(kind, replaced).set(0)
    SERVED_MODELS.labels(kind, name).set(1)


def record_events(accepted: int, duplicates: int) -> None:
    EVENTS_INGESTED.labels("accepted").inc(accepted)
    EVENTS_INGESTED.labels("duplicate").inc(duplicates)


class TimedMilvusClient:
    """A MilvusClient whose public methods each observe their duration in milvus_call_duration_seconds."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        histogram = MILVUS_SECONDS.labels(name)

        @wraps(attribute)
        def timed(*args, **kwargs):
            with histogram.time():
                return attribute(*args, **kwargs)

        setattr(self, name, timed)  # found directly from now on
        return timed
