"""Search relevance on real, user-labelled data: MovieLens tags as queries over the movies.

    python -m bench.relevance [--data ../shared/data/movielens-latest-small] [--min-movies 3]

Labels (tag completion): a tag MovieLens users gave to at least `--min-movies` movies is a query (two
bookkeeping tags left out, see META_TAGS). The catalogue is every movie some user tagged. Its movies are
split by a hash of (tag, movie) into kept and held-out halves: a movie's indexed text is its title, genres
and the tags it was given except those held out from it; the query's relevant results are its held-out
movies (binary gains), whose text lacks the query tag, and its kept movies are excluded from the search by
the service's own filter (`product_id not in ...`). So a query is found through the movies' titles, genres
and other tags only. Queries are split by a hash of their
text into validation and test halves: the defaults (analyzer, name retriever, RRF k, dense weight) are chosen
on validation and reported on test.

Every service row runs ProductStore.search — the code GET /search runs, with the service's encoder — over a
Milvus Lite store built by the service's indexing code (one store per TEXT_ANALYZER); the chosen defaults are
also run through GET /search itself (Flask test client). Exact references computed here in the same run: numpy
dense search over the same vectors, BM25 (k1 1.2, b 0.75, as Milvus) over the same texts with Python
tokenisers (`standard`: lowercase words; `english`: plus Lucene's English stop words and the Snowball English
stemmer), and RRF of those exact lists.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import math
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core.catalog import Product, embedding_text, search_text  # noqa: E402
from app.core.embedding import load_encoder  # noqa: E402
from app.core.indexing import rows_with_vectors  # noqa: E402
from app.storage.fusion import rrf  # noqa: E402
from app.storage.milvus_filters import ProductFilter  # noqa: E402
from app.storage.products import ProductStore, connect, name_text  # noqa: E402
from seed.importers import read_movielens  # noqa: E402

from .common import ROOT, bench_data_dir, print_table  # noqa: E402

MOVIELENS = ROOT.parent / "shared" / "data" / "movielens-latest-small"
META_TAGS = {"in netflix queue", "imdb top 250"}  # about a user's lists, not the movie
K, DEPTH = 10, 100  # nDCG@K, recall@DEPTH
ANALYZERS = ("standard", "english")
RRF_KS = (10, 30, 60, 100)
DENSE_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
STOP_WORDS = set("a an and are as at be but by for if in into is it no not of on or such that the their then "
                 "there these they this to was will with".split())  # Lucene's English stop words, as Milvus's


# ---- labels ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Labels:
    relevant: dict[str, set[str]]  # query → its held-out movies
    kept: dict[str, tuple[str, ...]]  # query → its movies whose text keeps the tag (excluded from the search)


def _hashed(*parts: str) -> int:
    return hashlib.sha1("\x1f".join(parts).encode()).digest()[0]


def load_tags(data: Path) -> dict[str, dict[str, str]]:
    """product id → {tag lowercased: the first spelling seen}."""
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    with open(data / "tags.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            tag = " ".join(row["tag"].split())
            if tag:
                tags[f"ml{row['movieId']}"].setdefault(tag.lower(), tag)
    return tags


def make_labels(tags: dict[str, dict[str, str]], min_movies: int) -> Labels:
    """The queries (tags on at least `min_movies` movies) with their movies split into held-out and kept."""
    movies_of: dict[str, list[str]] = defaultdict(list)
    for movie, movie_tags in sorted(tags.items()):
        for tag in movie_tags:
            if tag not in META_TAGS:
                movies_of[tag].append(movie)
    relevant, kept = {}, {}
    for tag, movies in sorted(movies_of.items()):
        if len(movies) < min_movies:
            continue
        ordered = sorted(movies, key=lambda movie: (_hashed(tag, movie), movie))
        half = len(ordered) // 2  # at least one held out and one kept
        relevant[tag], kept[tag] = set(ordered[:half]), tuple(ordered[half:])
    return Labels(relevant, kept)


def load_movies(data: Path, tags: dict[str, dict[str, str]], labels: Labels) -> list[Product]:
    """The movies users tagged (title, genres, rating from ratings.csv), described by their tags but those
    held out from them."""
    held_out = {(movie, tag) for tag, movies in labels.relevant.items() for movie in movies}
    with tempfile.TemporaryDirectory() as untagged:
        for name in ("movies.csv", "ratings.csv"):
            os.symlink(data / name, Path(untagged) / name)
        products = [Product.model_validate(record) for record in read_movielens(untagged)]
    described = []
    for product in (p for p in products if p.product_id in tags):
        shown = [spelling for tag, spelling in tags.get(product.product_id, {}).items()
                 if (product.product_id, tag) not in held_out]
        text = f"{product.description} Tags: {', '.join(shown)}." if shown else product.description
        described.append(product.model_copy(update={"description": text.strip()}))
    return described


def split(queries: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """Validation and test halves, by a stable hash of the query text."""
    halves: dict[str, dict[str, set[str]]] = {"validation": {}, "test": {}}
    for query, relevant in queries.items():
        halves["test" if _hashed(query) % 2 else "validation"][query] = relevant
    return halves


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
def movie_vectors(products: list[Product], encoder) -> np.ndarray:
    """The movies' dense vectors, cached on disk."""
    texts = [embedding_text(p) for p in products]
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    cache = bench_data_dir("cache") / f"movielens-{digest}-{encoder.name.replace('/', '_')}.npy"
    if cache.exists():
        return np.load(cache)
    print(f"embedding {len(products)} movies ...", flush=True)
    vectors = encoder.encode_documents(texts)
    np.save(cache, vectors)
    return vectors


def build_store(analyzer: str, products: list[Product], vectors: np.ndarray, dimension: int) -> ProductStore:
    """A fresh embedded store of the movies with TEXT_ANALYZER=`analyzer`, written by the service's code."""
    data_dir = bench_data_dir(f"relevance-{analyzer}")
    shutil.rmtree(data_dir)
    settings = Settings.from_env(data_dir=data_dir, text_analyzer=analyzer, query_cache_size=0)
    store = ProductStore(connect(settings), settings, dimension)
    store.ensure_collection()
    print(f"writing {len(products)} movies (TEXT_ANALYZER={analyzer}) ...", flush=True)
    store.upsert(rows_with_vectors(products, vectors))
    store.flush()
    return store


def service_run(store: ProductStore, query_vectors: dict[str, np.ndarray], labels: Labels,
                **search) -> dict[str, list[str]]:
    return {q: [hit.product["product_id"] for hit in store.search(
        query_vectors[q], q, ProductFilter(active=None, exclude_ids=labels.kept[q]), limit=DEPTH, **search).hits]
        for q in labels.relevant}


def http_run(settings: Settings, labels: Labels, **params) -> dict[str, list[str]]:
    """GET /search at the settings' defaults (limit DEPTH), through the Flask app, without the kept movies
    (the API has no exclusion filter: the top DEPTH after dropping them, as fetched with a deeper page)."""
    client = create_app({"SETTINGS": settings}).test_client()
    run = {}
    for q in labels.relevant:
        response = client.get("/search", query_string={"q": q, "limit": DEPTH, "active": "all", **params})
        assert response.status_code == 200, response.json
        run[q] = [hit["product_id"] for hit in response.json["results"] if hit["product_id"] not in labels.kept[q]]
    return run


def ids_of(ranked: list[tuple[str, float]]) -> list[str]:
    return [pid for pid, _ in ranked]


def fmt(value: float) -> str:
    return f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=MOVIELENS)
    parser.add_argument("--min-movies", type=int, default=3)
    args = parser.parse_args()

    tags = load_tags(args.data)
    labels = make_labels(tags, args.min_movies)
    products = load_movies(args.data, tags, labels)
    halves = split(labels.relevant)
    every = labels.relevant
    print(f"{len(products)} movies; queries: {len(halves['validation'])} validation, {len(halves['test'])} test; "
          f"{sum(map(len, every.values()))} held-out labels", flush=True)
    encoder = load_encoder(Settings.from_env(query_cache_size=0))
    vectors = movie_vectors(products, encoder)
    query_vectors = {q: encoder.encode_query(q) for q in every}
    ids = [p.product_id for p in products]

    def row(name: str, run: dict[str, list[str]]) -> list:
        return [name, *(fmt(value) for half in ("validation", "test") for value in scores(run, halves[half]))]

    rows: list[list] = []
    exact = {"dense": {q: exact_dense(ids, vectors, query_vectors[q], labels.kept[q]) for q in every}}
    rows.append(row("exact dense (numpy)", {q: ids_of(r) for q, r in exact["dense"].items()}))
    for analyzer in ANALYZERS:
        text = ExactBM25(ids, [search_text(p) for p in products], analyzer)
        name = ExactBM25(ids, [name_text(p.model_dump()) for p in products], analyzer)
        exact[f"text-{analyzer}"] = {q: text.search_excluding(q, labels.kept[q]) for q in every}
        exact[f"name-{analyzer}"] = {q: name.search_excluding(q, labels.kept[q]) for q in every}
        for part in (f"text-{analyzer}", f"name-{analyzer}"):
            rows.append(row(f"exact BM25 {part}", {q: ids_of(r) for q, r in exact[part].items()}))
        for parts in (("dense", f"text-{analyzer}"), ("dense", f"text-{analyzer}", f"name-{analyzer}")):
            fused = {q: ids_of(rrf({p: exact[p][q] for p in parts}, 60)) for q in every}
            rows.append(row(f"exact RRF k=60: {' + '.join(parts)}", fused))
    print_table("Exact references (outside the service), nDCG@10 and recall@100",
                ["reference", "val nDCG@10", "val R@100", "test nDCG@10", "test R@100"], rows)

    service_rows, runs = [], {}
    for analyzer in ANALYZERS:
        store = build_store(analyzer, products, vectors, encoder.dimension)
        base = store.settings
        for mode in ("dense", "sparse"):
            runs[(analyzer, mode)] = service_run(store, query_vectors, labels, mode=mode)
            service_rows.append(row(f"{analyzer}: {mode}", runs[(analyzer, mode)]))
        for name_retriever in (False, True):
            on = "on" if name_retriever else "off"
            for k in RRF_KS:
                store.settings = base.model_copy(update={"name_retriever": name_retriever, "rrf_k": k})
                runs[(analyzer, "rrf", name_retriever, k)] = run = service_run(store, query_vectors, labels)
                service_rows.append(row(f"{analyzer}: hybrid RRF k={k}, name {on}", run))
            store.settings = base.model_copy(update={"name_retriever": name_retriever})
            for weight in DENSE_WEIGHTS:
                runs[(analyzer, "weighted", name_retriever, weight)] = run = service_run(
                    store, query_vectors, labels, fusion="weighted", dense_weight=weight)
                service_rows.append(row(f"{analyzer}: hybrid weighted w={weight}, name {on}", run))
        store.client.close()
    print_table("Service (ProductStore.search over Milvus Lite), nDCG@10 and recall@100",
                ["configuration", "val nDCG@10", "val R@100", "test nDCG@10", "test R@100"], service_rows)

    validation, test = halves["validation"], halves["test"]
    best_single = max((key for key in runs if len(key) == 2), key=lambda key: scores(runs[key], validation)[0])
    analyzer = best_single[0] if best_single[1] == "sparse" else max(
        ANALYZERS, key=lambda a: scores(runs[(a, "sparse")], validation)[0])
    best = {kind: max((key for key in runs if key[0] == analyzer and key[1] == kind),
                      key=lambda key: scores(runs[key], validation)[0]) for kind in ("rrf", "weighted")}
    print(f"chosen on validation: TEXT_ANALYZER={analyzer}; RRF {best['rrf']}; weighted {best['weighted']}; "
          f"best single retriever {best_single}\n", flush=True)
    settings = Settings.from_env(data_dir=bench_data_dir(f"relevance-{analyzer}"), text_analyzer=analyzer,
                                 name_retriever=best["rrf"][2], rrf_k=best["rrf"][3],
                                 dense_weight=best["weighted"][3], query_cache_size=0)
    single_test = scores(runs[best_single], test)[0]
    summary = [(f"best single retriever (validation): {best_single[0]} {best_single[1]}", runs[best_single]),
               (f"chosen RRF: k={best['rrf'][3]}, name {best['rrf'][2]}", runs[best["rrf"]]),
               (f"chosen weighted: w={best['weighted'][3]}, name {best['weighted'][2]}", runs[best["weighted"]]),
               ("GET /search, chosen defaults, RRF (kept dropped after)", http_run(settings, labels)),
               ("GET /search, chosen defaults, weighted (kept dropped after)",
                http_run(settings, labels, fusion="weighted"))]
    print_table("Chosen on validation, reported on test (Δ: test nDCG@10 minus the best single retriever's)",
                ["run", "val nDCG@10", "val R@100", "test nDCG@10", "test R@100", "Δ test nDCG@10"],
                [[*row(name, run), fmt(scores(run, test)[0] - single_test)] for name, run in summary])


if __name__ == "__main__":
    main()
