"""Latency of GET /search's fusion, sorting and facets beside the previous search path, in the same run.

    python -m bench.search_features [--sizes 10000] [--queries 200]

Over the benchmark store of bench/stack.py (mock products, served by a Milvus Lite server on loopback as
`make run` serves it), one client, every query encoded (no query cache). The baseline is the previous /search
path: one Milvus `hybrid_search` of dense + BM25 with Milvus's RRFRanker (HYBRID_CANDIDATES each, all product
fields). Each row is encoding + ProductStore.search as GET /search runs it, and the GET /search rows add the
Flask request. Wrap in `flock /tmp/bench.lock` on a shared machine.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pymilvus import AnnSearchRequest, RRFRanker  # noqa: E402

from app import create_app  # noqa: E402
from app.core.resources import EXTENSION_KEY  # noqa: E402
from app.storage.milvus_filters import ProductFilter  # noqa: E402
from app.storage.products import DENSE_FIELD, PRODUCT_FIELDS, SPARSE_FIELD  # noqa: E402

from .common import percentiles, print_table, queries, timed  # noqa: E402
from .stack import build_store, served_store  # noqa: E402

LIMIT = 10
# name → (store settings changed, ProductStore.search keywords)
VARIANTS = {
    "hybrid RRF, one Milvus hybrid_search (fusion=rrf)": ({}, {"fusion": "rrf"}),
    "hybrid RRF fused in the service (fusion=rrf&explain=true)": ({}, {"fusion": "rrf", "explain": True}),
    "hybrid RRF + name retriever (NAME_RETRIEVER=true)": ({"name_retriever": True}, {"fusion": "rrf"}),
    "hybrid weighted, fused in the service (default: FUSION=weighted)": ({}, {"fusion": "weighted"}),
    "sort=price_asc": ({}, {"sort": "price_asc"}),
    "facets=true": ({}, {"facets": True}),
    "sort=newest&facets=true": ({}, {"sort": "newest", "facets": True}),
}
HTTP_VARIANTS = {"GET /search (default)": {}, "GET /search sort=price_asc&facets=true": {"sort": "price_asc",
                                                                                         "facets": "true"}}


def previous_search(store, encoder, text: str) -> list:
    """The search /search ran before: Milvus hybrid_search with RRFRanker over dense + BM25."""
    expr = ProductFilter().expression()
    window = store.settings.hybrid_candidates
    requests = [
        AnnSearchRequest([encoder.encode_query(text).tolist()], DENSE_FIELD, store._dense_search_params(window),
                         window, expr=expr),
        AnnSearchRequest([text], SPARSE_FIELD, {"metric_type": "BM25"}, window, expr=expr),
    ]
    return store.client.hybrid_search(store.collection, requests, RRFRanker(store.settings.rrf_k), limit=LIMIT,
                                      output_fields=list(PRODUCT_FIELDS))[0]


def measure(size: int, n_queries: int) -> list[list]:
    with served_store(size, query_cache_size=0) as (settings, _lite_server):
        app = create_app({"SETTINGS": settings})
        res = app.extensions[EXTENSION_KEY]
        try:
            build_store(size, settings, res.encoder)
            store, encoder, base = res.products, res.encoder, res.products.settings
            texts = queries(n_queries)
            runs = {"previous /search path: Milvus hybrid_search RRF, 2 retrievers":
                    lambda t: previous_search(store, encoder, t)}
            for name, (changed, keywords) in VARIANTS.items():
                def run(t, changed=changed, keywords=keywords):
                    store.settings = base.model_copy(update=changed)
                    return store.search(encoder.encode_query(t), t, ProductFilter(), limit=LIMIT, **keywords)
                runs[name] = run
            client = app.test_client()
            for name, params in HTTP_VARIANTS.items():
                def run(t, params=params):
                    store.settings = base
                    assert client.get("/search", query_string={"q": t, "limit": LIMIT, **params}).status_code == 200
                runs[name] = run
            samples = {name: [] for name in runs}
            for name, run in runs.items():  # warm-up
                for text in texts[:10]:
                    run(text)
            for text in texts:  # interleaved: every variant meets the same machine load
                for name, run in runs.items():
                    samples[name].append(timed(lambda: run(text)))
            baseline = percentiles(samples[next(iter(runs))])
            rows = []
            for name, values in samples.items():
                stats = percentiles(values)
                rows.append([size, name, stats["p50"], stats["p95"], stats["p95"] - baseline["p95"]])
            return rows
        finally:
            res.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rows = [row for size in args.sizes.split(",") for row in measure(int(size), args.queries)]
    print_table(f"Search latency with fusion, sorting and facets, ms ({args.queries} queries, limit {LIMIT}, "
                "single client, Milvus Lite server; Δ p95 against the previous path in the same run)",
                ["products", "path", "p50", "p95", "Δ p95"], rows)


if __name__ == "__main__":
    main()
