"""Fusing the ranked candidate lists of several retrievers into one ranking, in the service.

Each retriever's list is `[(product_id, score), ...]`, best first. Scores of different retrievers are not
comparable (BM25 is unbounded, cosine is not), so fusion uses ranks (RRF) or scores min-max normalised over
each list's own candidates (weighted) — never Milvus's arctan squashing of BM25 scores.
"""
from __future__ import annotations

from typing import Mapping, Sequence

Ranked = Sequence[tuple[str, float]]


def rrf(lists: Mapping[str, Ranked], k: int) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion: Σ 1 / (k + rank) over the lists holding a candidate (rank 1-based)."""
    fused: dict[str, float] = {}
    for ranked in lists.values():
        for rank, (product_id, _score) in enumerate(ranked, start=1):
            fused[product_id] = fused.get(product_id, 0.0) + 1.0 / (k + rank)
    return _ordered(fused)


def weighted(lists: Mapping[str, Ranked], weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """Σ weight × min-max normalised score (a list's first candidate 1, its last 0; 0 where a list lacks the
    candidate). Lists come best first, so this holds whatever the sign of the retriever's scores; a list
    whose scores are all equal gives each of its candidates 1.
    """
    fused: dict[str, float] = {}
    for name, ranked in lists.items():
        if not ranked:
            continue
        worst, span = ranked[-1][1], ranked[0][1] - ranked[-1][1]
        for product_id, score in ranked:
            normalised = (score - worst) / span if span else 1.0
            fused[product_id] = fused.get(product_id, 0.0) + weights.get(name, 0.0) * normalised
    return _ordered(fused)


def _ordered(fused: dict[str, float]) -> list[tuple[str, float]]:
    """Best first; ties by product id, ascending, as Milvus's rankers order them (so RRF here and Milvus's
    RRFRanker in `hybrid_search` give the same order on the same candidates)."""
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
