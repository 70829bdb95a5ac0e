"""Milvus call latency (milvus_call_duration_seconds), observed by wrapping the client."""
from __future__ import annotations

from functools import wraps

from prometheus_client import Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MILVUS_SECONDS = Histogram("milvus_call_duration_seconds", "Duration of Milvus client calls, by client method",
                           ["method"], buckets=LATENCY_BUCKETS)


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
