"""Seeding throughput and GET /search latency on the embedded defaults.

    python -m bench.search [--sizes 2000,100000] [--queries 200] [--seed-sample 2000] [--index-types FLAT,HNSW]

Seeding (into an embedded Lite file) is compared with the raw model throughput on the same texts. Search
latency (through the Flask app, query encoding included, over the store served as `make run` serves it: see
bench/stack.py) is compared with numpy exact search over the same vectors, all in the same run; the dense
mode's recall@10 is measured against that exact search (active products only).
"""
from __future__ import annotations

import argparse
import os
import shutil

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.catalog import Product, embedding_text  # noqa: E402
from app.embedding import load_encoder  # noqa: E402
from app.indexing import DEFAULT_BATCH, chunked, index_products  # noqa: E402
from app.resources import EXTENSION_KEY  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store import LITE_INDEX_FALLBACKS, ProductStore, connect  # noqa: E402
from seed.mock_catalog import generate_products  # noqa: E402

from .common import bench_data_dir, percentiles, print_table, queries, timed  # noqa: E402
from .stack import CATALOG_SEED, build_store, served_store  # noqa: E402

MODES = ("hybrid", "dense", "sparse")
TOP_K = 10


def seeding_throughput(sample: int) -> list:
    """Products/s of the seeding pipeline vs texts/s of the bare model on the same texts."""
    data_dir = bench_data_dir("seeding")
    shutil.rmtree(data_dir)
    settings = Settings.from_env(data_dir=data_dir)
    products = [Product.model_validate(r) for r in generate_products(sample, seed=CATALOG_SEED)]
    texts = [embedding_text(product) for product in products]
    encoder = load_encoder(settings)
    encoder.encode_documents(texts[:128])  # warm-up
    raw_s = timed(lambda: [encoder.encode_documents(batch) for batch in chunked(texts, DEFAULT_BATCH)]) / 1000
    store = ProductStore(connect(settings), settings, encoder.dimension)
    store.ensure_collection()
    seed_s = timed(lambda: (index_products(products, store, encoder), store.flush())) / 1000
    store.client.close()
    raw, seeded = sample / raw_s, sample / seed_s
    return [sample, round(raw, 1), round(seeded, 1), round(seeded / raw, 3)]


def search_latency(size: int, n_queries: int, index_type: str) -> list[list]:
    """The rows of one catalogue size and dense index type (the store's index is rebuilt if it has another);
    query encoding with the service's own encoder (TORCH_THREADS), every query encoded (no query cache)."""
    with served_store(size, index_type=index_type, query_cache_size=0) as (settings, _lite_server):
        app = create_app({"SETTINGS": settings})
        res = app.extensions[EXTENSION_KEY]
        try:
            products, vectors = build_store(size, settings, res.encoder)
            if res.products.dense_index_type not in (index_type, LITE_INDEX_FALLBACKS.get(index_type)):
                print(f"building the {index_type} index ...", flush=True)
                res.products.rebuild_dense_index()
            return measure_search(app, size, n_queries, res.encoder, products, vectors)
        finally:
            res.client.close()


def measure_search(app, size: int, n_queries: int, encoder, products: list[Product], vectors: np.ndarray
                   ) -> list[list]:
    client = app.test_client()
    index = client.get("/status").json["index_type"]
    texts = queries(n_queries)
    query_vectors = np.stack([encoder.encode_query(text) for text in texts])
    exact_ms = [timed(lambda q=q: np.argpartition(-(vectors @ q), 10)[:10]) for q in query_vectors]
    encode_ms = [timed(lambda t=t: encoder.encode_query(t)) for t in texts]
    rows = []
    for mode in MODES:
        for text in texts[:10]:  # warm-up
            _search(client, text, mode)
        samples, found = [], []
        for text in texts:
            samples.append(timed(lambda t=text, m=mode: found.append(_search(client, t, m))))
        stats = percentiles(samples)
        exact = percentiles(exact_ms)
        recall = dense_recall(products, vectors, query_vectors, found) if mode == "dense" else "-"
        rows.append([
            size, index, mode, stats["p50"], stats["p95"], stats["p99"], recall, percentiles(encode_ms)["p50"],
            exact["p50"], round(stats["p50"] / exact["p50"], 1),
        ])
    return rows


def _search(client, text: str, mode: str) -> list[str]:
    response = client.get("/search", query_string={"q": text, "mode": mode, "limit": TOP_K})
    assert response.status_code == 200, response.json
    return [hit["product_id"] for hit in response.json["results"]]


def dense_recall(products: list[Product], vectors: np.ndarray, query_vectors: np.ndarray,
                 found: list[list[str]]) -> float:
    """Mean share of the exact top-k active products (numpy) that dense /search returned."""
    active = np.array([product.active for product in products])
    ids = np.array([product.product_id for product in products])
    shares = []
    for query, returned in zip(query_vectors, found):
        scores = np.where(active, vectors @ query, -np.inf)
        exact = set(ids[np.argpartition(-scores, TOP_K)[:TOP_K]])
        shares.append(len(exact & set(returned)) / TOP_K)
    return round(float(np.mean(shares)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed-sample", type=int, default=2000)
    parser.add_argument("--index-types", default="FLAT,HNSW", help="INDEX_TYPE values (HNSW is IVF_FLAT on Lite)")
    args = parser.parse_args()

    print_table(
        "Seeding throughput (same texts, same run)",
        ["products", "raw model texts/s", "seeding products/s", "seeding / raw"],
        [seeding_throughput(args.seed_sample)],
    )
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for index_type in args.index_types.split(","):
            rows += search_latency(size, args.queries, index_type)
    print_table(
        f"GET /search latency, ms ({args.queries} queries, single client, in-process app, Milvus Lite server)",
        ["products", "dense index", "mode", "p50", "p95", "p99", "dense recall@10", "query encoding p50",
         "numpy exact p50", "p50 / numpy"],
        rows,
    )


if __name__ == "__main__":
    main()
