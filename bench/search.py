"""Seeding throughput and GET /search latency on the embedded defaults.

    python -m bench.search [--sizes 2000,100000] [--queries 200] [--seed-sample 2000]

Seeding is compared with the raw model throughput on the same texts; search latency (through the Flask
app, query encoding included) with numpy exact search over the same vectors, all in the same run.
"""
from __future__ import annotations

import argparse
import os
import shutil

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.catalog import Product, embedding_text, search_text  # noqa: E402
from app.embedding import load_encoder  # noqa: E402
from app.indexing import DEFAULT_BATCH, chunked, index_products  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store import DENSE_FIELD, TEXT_FIELD, ProductStore, connect  # noqa: E402
from seed.mock_catalog import generate_products  # noqa: E402

from .common import bench_data_dir, percentiles, print_table, queries, timed  # noqa: E402

MODES = ("hybrid", "dense", "sparse")
CATALOG_SEED = 42


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


def catalog_vectors(size: int, encoder) -> tuple[list[Product], np.ndarray]:
    """The first `size` mock products and their dense vectors (cached on disk: embedding 100k takes minutes)."""
    products = [Product.model_validate(r) for r in generate_products(size, seed=CATALOG_SEED)]
    cache = bench_data_dir("cache") / f"vectors-{CATALOG_SEED}-{encoder.name.replace('/', '_')}.npy"
    cached = np.load(cache) if cache.exists() else np.zeros((0, encoder.dimension), np.float32)
    if len(cached) < size:
        missing = [embedding_text(p) for p in products[len(cached):]]
        print(f"embedding {len(missing)} products (cached in {cache}) ...", flush=True)
        cached = np.vstack([cached, encoder.encode_documents(missing)])
        np.save(cache, cached)
    return products, cached[:size]


def build_store(size: int, settings: Settings, encoder) -> np.ndarray:
    """A store holding exactly the first `size` mock products (reused between runs); returns their vectors."""
    products, vectors = catalog_vectors(size, encoder)
    store = ProductStore(connect(settings), settings, encoder.dimension)
    store.ensure_collection()
    if store.count() != size:
        print(f"writing {size} products to {settings.resolved_milvus_uri} ...", flush=True)
        for start in range(0, size, 1000):
            rows = []
            for product, vector in zip(products[start:start + 1000], vectors[start:start + 1000]):
                rows.append({**product.model_dump(), TEXT_FIELD: search_text(product), DENSE_FIELD: vector.tolist()})
            store.upsert(rows)
        store.flush()
    store.client.close()
    return vectors


def search_latency(size: int, n_queries: int, encoder) -> list[list]:
    settings = Settings.from_env(data_dir=bench_data_dir(f"store-{size}"))
    vectors = build_store(size, settings, encoder)
    app = create_app({"SETTINGS": settings})
    client = app.test_client()
    texts = queries(n_queries)
    query_vectors = np.stack([encoder.encode_query(text) for text in texts])
    exact_ms = [timed(lambda q=q: np.argpartition(-(vectors @ q), 10)[:10]) for q in query_vectors]
    encode_ms = [timed(lambda t=t: encoder.encode_query(t)) for t in texts]
    rows = []
    for mode in MODES:
        for text in texts[:10]:  # warm-up
            client.get("/search", query_string={"q": text, "mode": mode})
        samples = []
        for text in texts:
            samples.append(timed(lambda t=text, m=mode: _search_ok(client, t, m)))
        stats = percentiles(samples)
        exact = percentiles(exact_ms)
        rows.append([
            size, mode, stats["p50"], stats["p95"], stats["p99"], percentiles(encode_ms)["p50"],
            exact["p50"], round(stats["p50"] / exact["p50"], 1),
        ])
    return rows


def _search_ok(client, text: str, mode: str) -> None:
    response = client.get("/search", query_string={"q": text, "mode": mode})
    assert response.status_code == 200, response.json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed-sample", type=int, default=2000)
    args = parser.parse_args()

    print_table(
        "Seeding throughput (same texts, same run)",
        ["products", "raw model texts/s", "seeding products/s", "seeding / raw"],
        [seeding_throughput(args.seed_sample)],
    )
    encoder = load_encoder(Settings.from_env())
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows += search_latency(size, args.queries, encoder)
    print_table(
        f"GET /search latency, ms ({args.queries} queries, single client, in-process)",
        ["products", "mode", "p50", "p95", "p99", "query encoding p50", "numpy exact p50", "p50 / numpy"],
        rows,
    )


if __name__ == "__main__":
    main()
