"""How much a fusion of dense and BM25 can gain on a query set: per-query evidence and oracle upper bounds,
from the exact reference lists of bench/relevance.py (query → [(product_id, score)], best first).

- BM25 empty: queries none of whose terms occur in the catalogue (BM25 has nothing to add);
- relevant found by BM25 only: relevant products in BM25's list but not in dense's (same depth);
- oracle retriever per query: each query served by whichever of dense and BM25 scores better on it;
- oracle weight per query: each query fused (app/storage/fusion.py weighted) with its own best dense weight of WEIGHTS;
- 95% interval of Δ: a paired bootstrap over the queries of (fusion − best single retriever) nDCG@10, i.e.
  how large a difference the set can resolve.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from app.storage.fusion import weighted

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
Run = dict[str, list[tuple[str, float]]]


def ids(ranked) -> list[str]:
    return [pid for pid, _ in ranked]


def bootstrap_interval(differences: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [differences[rng.integers(0, len(differences), len(differences))].mean() for _ in range(draws)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def ceiling_row(queries: dict[str, set[str]], dense: Run, bm25: Run, fused: dict[str, list[str]],
                ndcg: Callable[[list[str], set[str]], float], fmt: Callable[[float], str]) -> list:
    """One half's row: evidence counts, single and fused nDCG@10, oracle bounds, Δ with its interval."""
    per = {name: np.array([ndcg(ranking(q), queries[q]) for q in queries]) for name, ranking in (
        ("dense", lambda q: ids(dense[q])), ("bm25", lambda q: ids(bm25[q])), ("fused", lambda q: fused[q]))}
    by_weight = np.array([[ndcg(ids(weighted({"dense": dense[q], "sparse": bm25[q]}, {"dense": w, "sparse": 1 - w})),
                                queries[q]) for q in queries] for w in WEIGHTS])
    best_single = max(("dense", "bm25"), key=lambda name: per[name].mean())
    relevant = sum(len(rel) for rel in queries.values())
    bm25_only = sum(len((set(ids(bm25[q])) - set(ids(dense[q]))) & queries[q]) for q in queries)
    low, high = bootstrap_interval(per["fused"] - per[best_single])
    return [len(queries), sum(1 for q in queries if not bm25[q]), f"{bm25_only} / {relevant}",
            fmt(per["dense"].mean()), fmt(per["bm25"].mean()), fmt(per["fused"].mean()),
            fmt(np.maximum(per["dense"], per["bm25"]).mean()), fmt(by_weight.max(axis=0).mean()),
            f"{per['fused'].mean() - per[best_single].mean():+.4f} [{low:+.4f}, {high:+.4f}]"]


CEILING_HEADER = ["half", "queries", "BM25 empty", "relevant found by BM25 only (@100)", "dense", "BM25", "fused",
                  "oracle retriever per query", "oracle weight per query", "Δ fused − best single [95%]"]
