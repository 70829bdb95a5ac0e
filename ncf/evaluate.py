"""Ranking metrics for any model with `score(users, items) -> scores` over index arrays.

Sampled protocol (He et al. 2017): the held-out item ranked among the user's sampled negatives gives
HR@k, NDCG@k and AUC. Full catalogue: the held-out item ranked among every item the user had not
interacted with before it gives Recall@k and NDCG@k; coverage@k is the share of the catalogue that
appears in at least one user's top k. Ties count against the held-out item (its rank is the number of
candidates scoring at least as high); AUC counts ties as half. Ranked lists (a recommender's answers,
e.g. the service's): HR@k, NDCG@k, recall@K of the held-out item and coverage@k of the catalogue.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Protocol, Sequence

import numpy as np

from .data import HeldOut


FULL_CATALOGUE_PAIRS = 50_000_000  # scored (user, item) pairs beyond which a fixed sample of users is ranked


class Scorer(Protocol):
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...


def rank_metrics(positive_scores: np.ndarray, negative_scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """Mean HR@k, NDCG@k and AUC of positives (n,) each against its row of negatives (n, m)."""
    positive = np.asarray(positive_scores, dtype=np.float64)[:, None]
    negative = np.asarray(negative_scores, dtype=np.float64)
    above = (negative > positive).sum(axis=1)
    ties = (negative == positive).sum(axis=1)
    ranks = above + ties  # 0-based, pessimistic
    hits = ranks < k
    return {
        f"hr@{k}": float(hits.mean()),
        f"ndcg@{k}": float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean()),
        "auc": float(((negative.shape[1] - above - ties) + 0.5 * ties).mean() / negative.shape[1]),
    }


def sampled_metrics(model: Scorer, held_out: HeldOut, k: int = 10) -> dict[str, float]:
    """HR@k, NDCG@k and AUC of the held-out items among their sampled negatives (one batched scoring)."""
    candidates = np.concatenate((held_out.items[:, None], held_out.negatives), axis=1)
    users = np.broadcast_to(held_out.users[:, None], candidates.shape)
    scores = np.asarray(model.score(users.ravel(), candidates.ravel()), dtype=np.float64).reshape(candidates.shape)
    return rank_metrics(scores[:, 0], scores[:, 1:], k)


def full_catalogue_metrics(model: Scorer, held_out: HeldOut, n_items: int, k: int = 10,
                           pairs_per_batch: int = 1 << 19, max_pairs: int = FULL_CATALOGUE_PAIRS) -> dict[str, float]:
    """Recall@k, NDCG@k (`full_ndcg@k`) over all items not known before the held-out one, and coverage@k.

    Every held-out user is ranked against the whole catalogue unless that exceeds `max_pairs` scores (e.g.
    5,000 users × 100,000 products): then a fixed random sample of max_pairs // n_items users is.
    """
    held_out = _sample_users(held_out, max(1, max_pairs // max(n_items, 1)))
    known_order = np.argsort(held_out.known_users, kind="stable")
    known_users, known_items = held_out.known_users[known_order], held_out.known_items[known_order]
    all_items = np.arange(n_items)
    ranks = np.empty(len(held_out), dtype=np.int64)
    recommended = np.zeros(n_items, dtype=bool)
    step = max(1, pairs_per_batch // max(n_items, 1))
    for start in range(0, len(held_out), step):
        users = held_out.users[start:start + step]
        rows = np.arange(len(users))
        scores = np.asarray(model.score(np.repeat(users, n_items), np.tile(all_items, len(users))),
                            dtype=np.float64).reshape(len(users), n_items)
        first = np.searchsorted(known_users, users)
        counts = np.searchsorted(known_users, users, side="right") - first
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        scores[np.repeat(rows, counts), known_items[np.repeat(first, counts) + offsets]] = -np.inf
        positive = scores[rows, held_out.items[start:start + step]]
        ranks[start:start + step] = (scores >= positive[:, None]).sum(axis=1) - 1
        top = np.argpartition(-scores, min(k, n_items - 1), axis=1)[:, :k]
        recommended[top[np.isfinite(np.take_along_axis(scores, top, axis=1))]] = True
    hits = ranks < k
    return {
        f"recall@{k}": float(hits.mean()) if len(ranks) else 0.0,
        f"full_ndcg@{k}": float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else 0.0,
        f"coverage@{k}": float(recommended.mean()),
    }


def list_metrics(ranked: Sequence[Sequence[str]], held_out: Sequence[str], n_items: int, k: int = 10,
                 recall_k: int = 50) -> dict[str, float]:
    """hr@k, ndcg@k, recall@{recall_k} of each held-out item in its list, and coverage@k of `n_items`."""
    positions = [list(answer[:recall_k]).index(item) if item in answer[:recall_k] else recall_k
                 for answer, item in zip(ranked, held_out)]
    ranks = np.asarray(positions, dtype=np.float64)
    hits = ranks < k
    shown = {product_id for answer in ranked for product_id in answer[:k]}
    return {
        f"hr@{k}": float(hits.mean()) if len(ranks) else 0.0,
        f"ndcg@{k}": float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else 0.0,
        f"recall@{recall_k}": float((ranks < recall_k).mean()) if len(ranks) else 0.0,
        f"coverage@{k}": len(shown) / n_items if n_items else 0.0,
    }


def _sample_users(held_out: HeldOut, size: int, seed: int = 0) -> HeldOut:
    if len(held_out) <= size:
        return held_out
    chosen = np.sort(np.random.default_rng(seed).choice(len(held_out), size, replace=False))
    return replace(held_out, users=held_out.users[chosen], items=held_out.items[chosen],
                   negatives=held_out.negatives[chosen])


def evaluate(model: Scorer, held_out: HeldOut, n_items: int, k: int = 10) -> dict[str, float]:
    """Every metric: hr@k, ndcg@k, auc, recall@k, full_ndcg@k, coverage@k."""
    return {**sampled_metrics(model, held_out, k), **full_catalogue_metrics(model, held_out, n_items, k)}
