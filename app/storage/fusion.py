"""Fusing the ranked candidate lists of several retrievers into one ranking, in the service.

Each retriever's list is `[(product_id, score), ...]`, best first. Scores of different retrievers are not
comparable (BM25 is unbounded and depends on the catalogue, cosine is not), so fusion uses ranks (RRF) or
scores brought to one scale (weighted: cosine as it is, lexical scores divided by their list's best) — never
Milvus's arctan squashing of BM25 scores.
"""
from __future__ import annotations

from typing import Collection, Mapping, Sequence

Ranked = Sequence[tuple[str, float]]


def rrf(lists: Mapping[str, Ranked], k: int) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion: Σ 1 / (k + rank) over the lists holding a candidate (rank 1-based)."""
    fused: dict[str, float] = {}
    for ranked in lists.values():
        for rank, (product_id, _score) in enumerate(ranked, start=1):
            fused[product_id] = fused.get(product_id, 0.0) + 1.0 / (k + rank)
    return _ordered(fused)


def weighted(lists: Mapping[str, Ranked], weights: Mapping[str, float],
             similarities: Collection[str] = ("dense",)) -> list[tuple[str, float]]:
    """Σ weight × score on a common scale (a retriever without a weight adds nothing):

    - a list named in `similarities` (cosine similarity: a fixed scale, comparable across queries) keeps its
      scores, so a strong semantic match outweighs a weak one; a candidate missing from it gets the list's
      last score (it ranks no higher there);
    - any other list (BM25, learned sparse: unbounded) is divided by its best score, so its best candidate
      scores 1 and a candidate missing from it (no term matched, or below its window) 0; a list whose best
      score is not positive adds nothing.

    Unlike min-max normalisation this keeps the dense retriever's confidence and does not stretch its small
    score differences over [0, 1] (chosen on the relevance benchmark's validation split: docs/search.md).
    """
    fused = dict.fromkeys((product_id for ranked in lists.values() for product_id, _ in ranked), 0.0)
    for name, ranked in lists.items():
        weight = weights.get(name, 0.0)
        if not ranked or not weight:
            continue
        if name in similarities:
            scores, missing = dict(ranked), ranked[-1][1]
        else:
            best = ranked[0][1]
            scores, missing = ({pid: score / best for pid, score in ranked} if best > 0 else {}), 0.0
        for product_id in fused:
            fused[product_id] += weight * scores.get(product_id, missing)
    return _ordered(fused)


def _ordered(fused: dict[str, float]) -> list[tuple[str, float]]:
    """Best first; ties by product id, ascending, as Milvus's rankers order them (so RRF here and Milvus's
    RRFRanker in `hybrid_search` give the same order on the same candidates)."""
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
