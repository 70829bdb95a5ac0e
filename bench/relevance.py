"""Search relevance on real, user-labelled data (query sets: bench/relevance_sets.py).

    python -m bench.relevance [--sets movielens goodbooks] [--analyzers standard english]

Each set's queries are split by a hash of their text into validation and test halves: the defaults
(analyzer, fusion, RRF k, dense weight, name retriever) are chosen on the validation queries of all sets
run together and reported on test.

Every service row runs ProductStore.search — the code GET /search runs, with the service's encoder — over a
Milvus Lite store built by the service's indexing code (one store per set and TEXT_ANALYZER); the chosen
defaults are also run through GET /search itself (Flask test client). Exact references computed here in the
same run: numpy dense search over the same vectors, BM25 (k1 1.2, b 0.75, as Milvus) over the same texts with
Python tokenisers (`standard`: lowercase words; `english`: plus Lucene's English stop words and the Snowball
English stemmer), and RRF and weighted fusion of those exact lists; and what fusion can gain at most on each
set (bench/relevance_ceiling.py).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import shutil
from collections import Counter

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core.catalog import Product, embedding_text, search_text  # noqa: E402
from app.core.embedding import load_encoder  # noqa: E402
from app.core.indexing import rows_with_vectors  # noqa: E402
from app.storage.fusion import rrf, weighted  # noqa: E402
from app.storage.milvus_filters import ProductFilter  # noqa: E402
from app.storage.products import ProductStore, connect  # noqa: E402

from .common import bench_data_dir, print_table  # noqa: E402
from .relevance_ceiling import CEILING_HEADER, ceiling_row  # noqa: E402
from .relevance_sets import SETS, QuerySet, split  # noqa: E402

K, DEPTH = 10, 100  # nDCG@K, recall@DEPTH
ANALYZERS = ("standard", "english")
RRF_KS = (10, 30, 60, 100)
DENSE_WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9)
STOP_WORDS = set("a an and are as at be but by for if in into is it no not of on or such that the their then "
                 "there these they this to was will with".split())  # Lucene's English stop words, as Milvus's


# ---- metrics ----------------------------------------------------------------------------------------
def ndcg(ranked: list[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1.0 / math.log2(rank + 2) for rank, pid in enumerate(ranked[:k]) if pid in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal


def recall(ranked: list[str], relevant: set[str], depth: int = DEPTH) -> float:
    return len(set(ranked[:depth]) & relevant) / len(relevant)


def scores(run: dict[str, list[str]], queries: dict[str, set[str]]) -> tuple[float, float]:
    """Mean nDCG@K and recall@DEPTH of `run` (query → ranked ids) over `queries`."""
    return (float(np.mean([ndcg(run[q], rel) for q, rel in queries.items()])),
            float(np.mean([recall(run[q], rel) for q, rel in queries.items()])))


# ---- exact references -------------------------------------------------------------------------------
def tokenize(text: str, analyzer: str, stemmer) -> list[str]:
    words = re.findall(r"\w+", text.lower())
    if analyzer == "english":
        words = stemmer.stemWords([word for word in words if word not in STOP_WORDS])
    return words


class ExactBM25:
    """BM25 over every document, scored in Python (k1 1.2, b 0.75, idf log(1 + (N - n + .5) / (n + .5)))."""

    def __init__(self, ids: list[str], texts: list[str], analyzer: str, k1: float = 1.2, b: float = 0.75):
        import snowballstemmer

        self.ids, self.analyzer, self.k1, self.b = ids, analyzer, k1, b
        self.stemmer = snowballstemmer.stemmer("english")
        self.docs = [Counter(tokenize(text, analyzer, self.stemmer)) for text in texts]
        self.lengths = np.array([sum(doc.values()) for doc in self.docs], dtype=np.float64)
        frequency = Counter(term for doc in self.docs for term in doc)
        n = len(self.docs)
        self.idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in frequency.items()}
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, doc in enumerate(self.docs):
            for term, tf in doc.items():
                self.postings.setdefault(term, []).append((i, tf))

    def search(self, query: str, depth: int = DEPTH) -> list[tuple[str, float]]:
        total = np.zeros(len(self.docs))
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.lengths.mean())
        for term in tokenize(query, self.analyzer, self.stemmer):
            for i, tf in self.postings.get(term, ()):
                total[i] += self.idf[term] * tf * (self.k1 + 1) / (tf + norm[i])
        top = [i for i in np.argsort(-total, kind="stable")[:depth] if total[i] > 0]
        return [(self.ids[i], float(total[i])) for i in top]


    def search_excluding(self, query: str, excluded: tuple[str, ...]) -> list[tuple[str, float]]:
        return [hit for hit in self.search(query, DEPTH + len(excluded)) if hit[0] not in excluded][:DEPTH]


def exact_dense(ids: list[str], vectors: np.ndarray, query: np.ndarray, excluded: tuple[str, ...]
                ) -> list[tuple[str, float]]:
    similarity = vectors @ query
    ranked = ((ids[i], float(similarity[i])) for i in np.argsort(-similarity, kind="stable"))
    return [hit for hit in ranked if hit[0] not in excluded][:DEPTH]


# ---- the service ------------------------------------------------------------------------------------
def product_vectors(products: list[Product], encoder) -> np.ndarray:
    """The products' dense vectors, cached on disk."""
    texts = [embedding_text(p) for p in products]
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    cache = bench_data_dir("cache") / f"products-{digest}-{encoder.name.replace('/', '_')}.npy"
    if cache.exists():
        return np.load(cache)
    print(f"embedding {len(products)} products ...", flush=True)
    vectors = encoder.encode_documents(texts)
    np.save(cache, vectors)
    return vectors


def build_store(name: str, analyzer: str, products: list[Product], vectors: np.ndarray, dimension: int
                ) -> ProductStore:
    """A fresh embedded store of the products with TEXT_ANALYZER=`analyzer`, written by the service's code."""
    data_dir = bench_data_dir(f"relevance-{name}-{analyzer}")
    shutil.rmtree(data_dir)
    settings = Settings.from_env(data_dir=data_dir, text_analyzer=analyzer, query_cache_size=0)
    store = ProductStore(connect(settings), settings, dimension)
    store.ensure_collection()
    print(f"writing {len(products)} products of {name} (TEXT_ANALYZER={analyzer}) ...", flush=True)
    store.upsert(rows_with_vectors(products, vectors))
    store.flush()
    return store


def service_run(store: ProductStore, query_vectors: dict[str, np.ndarray], queries: QuerySet,
                **search) -> dict[str, list[str]]:
    return {q: [hit.product["product_id"] for hit in store.search(
        query_vectors[q], q, ProductFilter(active=None, exclude_ids=queries.excluded[q]), limit=DEPTH, **search).hits]
        for q in queries.relevant}


def http_run(settings: Settings, queries: QuerySet) -> dict[str, list[str]]:
    """GET /search at the settings' defaults (limit DEPTH), through the Flask app, without the excluded products
    (the API has no exclusion filter: the top DEPTH after dropping them)."""
    client = create_app({"SETTINGS": settings}).test_client()
    run = {}
    for q in queries.relevant:
        response = client.get("/search", query_string={"q": q, "limit": DEPTH, "active": "all"})
        assert response.status_code == 200, response.json
        run[q] = [hit["product_id"] for hit in response.json["results"] if hit["product_id"] not in queries.excluded[q]]
    return run


def ids_of(ranked: list[tuple[str, float]]) -> list[str]:
    return [pid for pid, _ in ranked]


def fmt(value: float) -> str:
    return f"{value:.4f}"


def configurations(analyzers) -> list[tuple]:
    """(analyzer, mode or fusion, name retriever, k or dense weight) of every service row."""
    rows = [(analyzer, mode, False, None) for analyzer in analyzers for mode in ("dense", "sparse")]
    for analyzer in analyzers:
        for name_retriever in (False, True):
            rows += [(analyzer, "rrf", name_retriever, k) for k in RRF_KS]
            rows += [(analyzer, "weighted", name_retriever, w) for w in DENSE_WEIGHTS]
    return rows


def label(key: tuple) -> str:
    analyzer, kind, name_retriever, value = key
    if kind in ("dense", "sparse"):
        return f"{analyzer}: {kind}"
    parameter = f"k={value}" if kind == "rrf" else f"w={value}"
    return f"{analyzer}: hybrid {kind} {parameter}, name {'on' if name_retriever else 'off'}"


def run_set(queries: QuerySet, analyzers, encoder) -> dict[tuple, dict[str, list[str]]]:
    """Exact references, the fusion ceiling and every service configuration on one query set; its runs."""
    halves = split(queries.relevant)
    every, excluded = queries.relevant, queries.excluded
    print(f"## {queries.name}: {len(queries.products)} products; queries: {len(halves['validation'])} validation, "
          f"{len(halves['test'])} test; {sum(map(len, every.values()))} relevant labels\n", flush=True)
    vectors = product_vectors(queries.products, encoder)
    query_vectors = {q: encoder.encode_query(q) for q in every}
    ids = [p.product_id for p in queries.products]

    def row(name: str, run: dict[str, list[str]]) -> list:
        return [name, *(fmt(value) for half in ("validation", "test") for value in scores(run, halves[half]))]

    rows: list[list] = []
    exact = {"dense": {q: exact_dense(ids, vectors, query_vectors[q], excluded[q]) for q in every}}
    rows.append(row("exact dense (numpy)", {q: ids_of(r) for q, r in exact["dense"].items()}))
    for analyzer in analyzers:
        text = ExactBM25(ids, [search_text(p) for p in queries.products], analyzer)
        exact[analyzer] = {q: text.search_excluding(q, excluded[q]) for q in every}
        rows.append(row(f"exact BM25 {analyzer}", {q: ids_of(r) for q, r in exact[analyzer].items()}))
        lists = {q: {"dense": exact["dense"][q], "sparse": exact[analyzer][q]} for q in every}
        rows.append(row(f"exact RRF k=100: dense + BM25 {analyzer}", {q: ids_of(rrf(lists[q], 100)) for q in every}))
        rows.append(row(f"exact weighted w=0.8: dense + BM25 {analyzer}",
                        {q: ids_of(weighted(lists[q], {"dense": 0.8, "sparse": 0.2})) for q in every}))
    print_table(f"{queries.name}: exact references (outside the service), nDCG@10 and recall@100",
                ["reference", "val nDCG@10", "val R@100", "test nDCG@10", "test R@100"], rows)

    fused = {q: ids_of(weighted({"dense": exact["dense"][q], "sparse": exact["english"][q]},
                                {"dense": 0.8, "sparse": 0.2})) for q in every} if "english" in exact else None
    if fused:
        print_table(f"{queries.name}: what fusion can gain (exact dense + BM25 english; fused: weighted w=0.8)",
                    CEILING_HEADER, [[half, *ceiling_row(halves[half], exact["dense"], exact["english"], fused,
                                                         ndcg, fmt)] for half in ("validation", "test")])

    runs, service_rows = {}, []
    for analyzer in analyzers:
        store = build_store(queries.name, analyzer, queries.products, vectors, encoder.dimension)
        base = store.settings
        for key in (key for key in configurations(analyzers) if key[0] == analyzer):
            _, kind, name_retriever, value = key
            if kind in ("dense", "sparse"):
                runs[key] = service_run(store, query_vectors, queries, mode=kind)
            else:
                store.settings = base.model_copy(update={
                    "name_retriever": name_retriever, "fusion": kind,
                    **({"rrf_k": value} if kind == "rrf" else {"dense_weight": value})})
                runs[key] = service_run(store, query_vectors, queries)
            service_rows.append(row(label(key), runs[key]))
        store.client.close()
    print_table(f"{queries.name}: service (ProductStore.search over Milvus Lite), nDCG@10 and recall@100",
                ["configuration", "val nDCG@10", "val R@100", "test nDCG@10", "test R@100"], service_rows)
    return runs


def pooled(runs: dict[str, dict[tuple, dict[str, list[str]]]], sets: dict[str, QuerySet], key: tuple,
           half: str) -> float:
    """Mean nDCG@10 of configuration `key` over the `half` queries of every set."""
    values = [ndcg(runs[name][key][q], rel) for name in sets for q, rel in split(sets[name].relevant)[half].items()]
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["movielens", "goodbooks"])
    parser.add_argument("--analyzers", nargs="+", choices=ANALYZERS, default=list(ANALYZERS))
    args = parser.parse_args()
    encoder = load_encoder(Settings.from_env(query_cache_size=0))
    sets = {name: SETS[name]() for name in args.sets}
    runs = {name: run_set(queries, args.analyzers, encoder) for name, queries in sets.items()}

    keys = configurations(args.analyzers)
    on_validation = lambda key: pooled(runs, sets, key, "validation")  # noqa: E731
    analyzer = max(args.analyzers, key=lambda a: on_validation((a, "sparse", False, None)))
    best = {kind: max((k for k in keys if k[0] == analyzer and k[1] == kind), key=on_validation)
            for kind in ("rrf", "weighted")}
    fusion = max(best, key=lambda kind: on_validation(best[kind]))
    print(f"chosen on the validation queries of {', '.join(sets)}: TEXT_ANALYZER={analyzer}; FUSION={fusion}; "
          f"RRF {label(best['rrf'])}; weighted {label(best['weighted'])}\n", flush=True)
    for name, queries in sets.items():
        halves = split(queries.relevant)
        singles = [(a, mode, False, None) for a in args.analyzers for mode in ("dense", "sparse")]
        best_single = max(singles, key=lambda key: scores(runs[name][key], halves["validation"])[0])
        settings = Settings.from_env(data_dir=bench_data_dir(f"relevance-{name}-{analyzer}"), text_analyzer=analyzer,
                                     fusion=fusion, name_retriever=best[fusion][2], rrf_k=best["rrf"][3],
                                     dense_weight=best["weighted"][3], query_cache_size=0)
        summary = [(f"best single retriever on {name} validation: {label(best_single)}", runs[name][best_single]),
                   (f"chosen RRF: {label(best['rrf'])}", runs[name][best["rrf"]]),
                   (f"chosen weighted: {label(best['weighted'])}", runs[name][best["weighted"]]),
                   (f"GET /search at the chosen defaults (FUSION={fusion})", http_run(settings, queries))]
        single_test = scores(runs[name][best_single], halves["test"])[0]
        print_table(f"{name}: chosen on validation, reported on test (Δ: test nDCG@10 minus the best single "
                    "retriever's)", ["run", "val nDCG@10", "val R@100", "test nDCG@10", "test R@100", "Δ test nDCG@10"],
                    [[label_, *(fmt(v) for half in ("validation", "test") for v in scores(run, halves[half])),
                      f"{scores(run, halves['test'])[0] - single_test:+.4f}"] for label_, run in summary])


if __name__ == "__main__":
    main()
