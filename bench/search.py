"""Encoder backends, seeding throughput and GET /search latency on the embedded defaults.

    python -m bench.search [--sizes 2000,100000] [--queries 200] [--seed-sample 2000] [--index-types FLAT,HNSW]
                           [--backends torch,onnx,onnx-int8] [--relevance tags,movielens,goodbooks]

Each encoder backend (as the service loads it: TORCH_THREADS threads) is measured in the same run on the same
texts: the seeding pipeline's products/s (into an embedded Lite file), query encoding, the cosine of its
vectors to torch's, and retrieval quality (exact dense search) on real relevance sets: MovieLens tags over
titles and genres (`tag_relevance_set`, the default) and, with --relevance, the tag-completion and
series look-up sets of bench/relevance_sets.py, their queries pooled. Search
latency (through the Flask app, query encoding included, over the store served as `make run` serves it: see
bench/stack.py) is compared with numpy exact search over the same vectors, all in the same run; the dense
mode's recall@10 is measured against that exact search (active products only).
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
from collections import defaultdict

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core.catalog import Product, embedding_text  # noqa: E402
from app.core.indexing import index_products  # noqa: E402
from app.core.resources import EXTENSION_KEY  # noqa: E402
from app.storage.milvus_filters import ProductFilter  # noqa: E402
from app.storage.products import DENSE_FIELD, DENSE_METRIC, LITE_INDEX_FALLBACKS  # noqa: E402
from seed.mock_catalog import generate_products  # noqa: E402

from app.core.resources import Resources  # noqa: E402

from .common import ROOT, bench_data_dir, percentiles, print_table, queries, timed  # noqa: E402
from .relevance_sets import SETS  # noqa: E402
from .stack import CATALOG_SEED, build_store, served_store  # noqa: E402

MODES = ("hybrid", "dense", "sparse")
TOP_K = 10


BACKENDS = {"torch": {"embedding_backend": "torch"}, "onnx": {"embedding_backend": "onnx"},
            "onnx-int8": {"embedding_backend": "onnx", "embedding_quantize": True}}
MOVIELENS = ROOT.parent / "shared" / "data" / "movielens-latest-small"
NOT_A_TOPIC = {"in netflix queue"}
Topics = list[tuple[str, set[int], set[int]]]  # (query, its relevant documents, documents left out of its search)


def tag_relevance_set(min_movies: int = 5) -> tuple[list[str], list[tuple[str, set[int]]]]:
    """A relevance set from MovieLens: the documents are the tagged movies' titles and genres (not their tags),
    each query is a tag given to at least `min_movies` movies, and those movies are its relevant documents."""
    titles = {row["movieId"]: f"{row['title']}. {row['genres'].replace('|', ', ')}"
              for row in csv.DictReader(open(MOVIELENS / "movies.csv", newline="", encoding="utf-8"))}
    tagged = defaultdict(set)
    for row in csv.DictReader(open(MOVIELENS / "tags.csv", newline="", encoding="utf-8")):
        tagged[row["tag"].strip().lower()].add(row["movieId"])
    movies = sorted({movie for movie_ids in tagged.values() for movie in movie_ids if movie in titles})
    index = {movie: i for i, movie in enumerate(movies)}
    topics = [(tag, {index[m] for m in ids if m in index}) for tag, ids in sorted(tagged.items())
              if len(ids) >= min_movies and tag not in NOT_A_TOPIC]
    return [titles[movie] for movie in movies], topics


def encoder_backends(sample: int, backends: list[str], judged: list[tuple[str, list[str], Topics]],
                     rounds: int = 10) -> list[list]:
    """One row per backend (see the module doc); ratios to the first backend (torch). The backends take turns
    (`rounds` slices of the sample seeded and of the queries encoded, each round in a rotated order), so a
    machine whose load changes during the run slows them alike."""
    products = [Product.model_validate(r) for r in generate_products(sample, seed=CATALOG_SEED)]
    texts = [embedding_text(product) for product in products]
    query_texts = queries(200)
    opened = {}
    for backend in backends:
        data_dir = bench_data_dir(f"seeding-{backend}")
        shutil.rmtree(data_dir / "milvus.db", ignore_errors=True)
        opened[backend] = Resources(Settings.from_env(data_dir=data_dir, query_cache_size=0, **BACKENDS[backend]))
        opened[backend].encoder.encode_documents(texts[:64])  # warm-up
    seed_ms = {backend: 0.0 for backend in backends}
    encode_ms = {backend: [] for backend in backends}
    for turn in range(rounds):
        order = backends[turn % len(backends):] + backends[:turn % len(backends)]
        chunk = products[turn * sample // rounds:(turn + 1) * sample // rounds]
        questions = query_texts[turn * len(query_texts) // rounds:(turn + 1) * len(query_texts) // rounds]
        for backend in order:
            res = opened[backend]
            seed_ms[backend] += timed(lambda: (index_products(chunk, res.products, res.encoder), res.products.flush()))
            encode_ms[backend] += [timed(lambda t=t: res.encoder.encode_query(t)) for t in questions]
    rows, reference = [], None
    for backend in backends:
        encoder = opened[backend].encoder
        vectors = encoder.encode_documents(texts[:256])
        scores = [dense_retrieval(encoder, encoder.encode_documents(documents), topics)
                  for _, documents, topics in judged]
        ndcg, recall = (np.concatenate(values) for values in zip(*scores))
        opened[backend].close()
        throughput, p50 = sample / seed_ms[backend] * 1000, percentiles(encode_ms[backend])["p50"]
        reference = reference or (vectors, throughput, p50, ndcg)
        rows.append([backend, round(throughput, 1), round(throughput / reference[1], 2), p50,
                     round(reference[2] / p50, 2), f"{(vectors * reference[0]).sum(1).min():.4f}",
                     f"{ndcg.mean():.4f}", paired_difference(ndcg, reference[3]), f"{recall.mean():.4f}"])
    return rows


def relevance_sets(names: list[str]) -> list[tuple[str, list[str], Topics]]:
    """(name, document texts, topics) of each named set: `tags` (`tag_relevance_set`) or a set of
    bench/relevance_sets.py (`movielens`: tag completion, `goodbooks`: series look-up)."""
    chosen = []
    for name in names:
        if name == "tags":
            documents, topics = tag_relevance_set()
            chosen.append((name, documents, [(tag, relevant, set()) for tag, relevant in topics]))
            continue
        judged = SETS[name]()
        index = {product.product_id: i for i, product in enumerate(judged.products)}
        chosen.append((name, [embedding_text(product) for product in judged.products],
                       [(query, {index[p] for p in relevant}, {index[p] for p in judged.excluded[query]})
                        for query, relevant in judged.relevant.items()]))
    return chosen


def dense_retrieval(encoder, doc_vectors: np.ndarray, topics: Topics) -> tuple[np.ndarray, np.ndarray]:
    """Per query of a relevance set: nDCG@10 and recall@100 of exact dense search."""
    discounts = 1 / np.log2(np.arange(2, 12))
    ndcgs, recalls = [], []
    for query, relevant, excluded in topics:
        similarity = doc_vectors @ encoder.encode_query(query)
        similarity[list(excluded)] = -np.inf
        ranked = np.argsort(-similarity, kind="stable")[:100]
        gains = np.array([int(i) in relevant for i in ranked[:10]], float)
        ndcgs.append((gains @ discounts) / discounts[:min(len(relevant), 10)].sum())
        recalls.append(len(relevant & set(ranked.tolist())) / len(relevant))
    return np.array(ndcgs), np.array(recalls)


def paired_difference(values: np.ndarray, baseline: np.ndarray, draws: int = 10_000) -> str:
    """Mean of `values - baseline` (per query) with its 95% paired-bootstrap interval."""
    differences = values - baseline
    rng = np.random.default_rng(0)
    means = differences[rng.integers(0, len(differences), (draws, len(differences)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return f"{differences.mean():+.4f} [{low:+.4f}, {high:+.4f}]"


def search_latency(size: int, n_queries: int, index_type: str, backend: str, widen: list[int]) -> list[list]:
    """The rows of one catalogue size, dense index type (the store's index is rebuilt if it has another) and
    EMBEDDING_BACKEND; query encoding with the service's own encoder (TORCH_THREADS), every query encoded (no
    query cache)."""
    with served_store(size, index_type=index_type, query_cache_size=0, embedding_backend=backend) as (settings, _):
        app = create_app({"SETTINGS": settings})
        res = app.extensions[EXTENSION_KEY]
        try:
            products, vectors = build_store(size, settings, res.encoder)
            if res.products.dense_index_type not in (index_type, LITE_INDEX_FALLBACKS.get(index_type)) \
                    or res.products.dense_metric != DENSE_METRIC:
                print(f"building the {index_type} index ...", flush=True)
                res.products.rebuild_dense_index()
            return measure_search(app, size, n_queries, res.encoder, products, vectors, widen)
        finally:
            res.client.close()


def measure_search(app, size: int, n_queries: int, encoder, products: list[Product], vectors: np.ndarray,
                   widen: list[int]) -> list[list]:
    client = app.test_client()
    status = client.get("/status").json
    index, backend = status["index_type"], status["model"]["backend"]
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
        rows.append([size, index, backend, mode, stats["p50"], stats["p95"], stats["p99"], recall,
                     percentiles(encode_ms)["p50"], exact["p50"], round(stats["p50"] / exact["p50"], 1)])
    store = app.extensions[EXTENSION_KEY].products
    for factor in widen:
        rows.append([size, index, backend, f"dense, {factor}× candidates re-scored exactly (store only)", "-", "-",
                     "-", widened_recall(store, products, vectors, query_vectors, factor), "-", "-", "-"])
    return rows


def widened_recall(store, products: list[Product], vectors: np.ndarray, query_vectors: np.ndarray,
                   factor: int) -> float:
    """Dense recall@10 of Milvus asked for `factor` × 10 candidates (active products, with their stored vectors)
    re-scored by exact cosine: what a wider candidate set buys on the store's index."""
    found = []
    for query in query_vectors:
        hits = store.nearest(query, factor * TOP_K, ProductFilter(), fields=("product_id", DENSE_FIELD))
        candidates = np.stack([hit.product[DENSE_FIELD] for hit in hits])
        found.append([hits[i].product["product_id"] for i in np.argsort(-(candidates @ query))[:TOP_K]])
    return dense_recall(products, vectors, query_vectors, found)


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
    parser.add_argument("--seed-sample", type=int, default=2000, help="0: no encoder backends table")
    parser.add_argument("--index-types", default="FLAT,HNSW", help="INDEX_TYPE values (HNSW is FLAT on Lite)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="the first is the baseline of the ratios")
    parser.add_argument("--relevance", default="tags", help="relevance sets of the backends table, queries pooled: "
                        "tags, movielens, goodbooks (see the module doc)")
    parser.add_argument("--search-backends", default="onnx,torch", help="EMBEDDING_BACKEND of the latency rows")
    parser.add_argument("--widen", default="", help="e.g. 4,10: dense recall of that many × 10 candidates re-scored")
    args = parser.parse_args()

    if args.seed_sample:
        judged = relevance_sets(args.relevance.split(","))
        described = ", ".join(f"{name} ({len(topics)} queries over {len(documents)} documents)"
                              for name, documents, topics in judged)
        print_table(
            f"Encoder backends, same run ({args.seed_sample} mock products seeded; query encoding of 200 queries; "
            f"relevance, exact dense search, queries pooled: {described})",
            ["backend", "seeding products/s", "× first", "query encoding p50 ms", "× first", "min cosine to first",
             "nDCG@10", "nDCG@10 − first [95% CI]", "recall@100"],
            encoder_backends(args.seed_sample, args.backends.split(","), judged),
        )
    if not args.sizes:
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for index_type in args.index_types.split(","):
            for backend in args.search_backends.split(","):
                rows += search_latency(size, args.queries, index_type, backend,
                                       [int(f) for f in args.widen.split(",") if f])
    print_table(
        f"GET /search latency, ms ({args.queries} queries, single client, in-process app, Milvus Lite server)",
        ["products", "dense index", "encoder", "mode", "p50", "p95", "p99", "dense recall@10", "query encoding p50",
         "numpy exact p50", "p50 / numpy"],
        rows,
    )


if __name__ == "__main__":
    main()
