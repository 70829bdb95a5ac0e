"""A search ranker trained on feedback: LightGBM LambdaRank over the hybrid candidates of a query.

Features per (query, candidate): the hybrid rank and score, popularity, price, rating, whether the query
names the product's category, and the query–product feedback from the impression log (times shown, and
clicks and purchases over those expected at the positions shown: position bias removed). Training
(`POST /train {"model": "ranker"}` or `python -m app.ops.cli train-ranker`) labels each logged search by what
was done with its list (purchase 3, add to cart 2, click 1; 0 for the other candidates of the query's pool,
shown or not); the feedback counts it learns from come from the older half of the log, the labels from the
newer half, so a label is never its own feature. It refuses with fewer than RANKER_MIN_FEEDBACK_LISTS lists
that led to an event. A model directory holds the booster and the feedback counts of the whole log; the
newest under MODELS_DIR/ranker is served and hot-swapped like NCF.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from app.storage.attribution import event_attributions, impressions
from app.storage.products import SearchHit

log = logging.getLogger(__name__)

FEATURES = ("fused_rank", "fused_score", "popularity", "price", "rating", "category_match",
            "q_shown", "q_clicks_over_expected", "q_purchases_over_expected")
LABELS = {"view": 1, "add_to_cart": 2, "purchase": 3}
MODEL_FILE, FEEDBACK_FILE = "model.txt", "feedback.json"


def normalise_query(text: str) -> str:
    return " ".join(text.lower().split())


class Feedback:
    """Per (normalised query, product): times shown, clicks and purchases, and the clicks and purchases
    expected from the positions it was shown at (each position's rate over the whole log). Their ratio
    (clicks over expected clicks) corrects for position bias: a product shown first is clicked more
    whatever it is worth."""

    def __init__(self, counts: dict[str, list[float]] | None = None):
        self.counts = counts or {}  # "query\tproduct" → [shown, clicks, purchases, expected clicks, expected purchases]

    @classmethod
    def of_lists(cls, lists: Sequence[tuple[str, list[str], dict[int, set[str]]]]) -> "Feedback":
        shown, clicked, bought = Counter(), Counter(), Counter()
        for _, products, outcomes in lists:
            for position in range(1, len(products) + 1):
                shown[position] += 1
                clicked[position] += "view" in outcomes.get(position, ())
                bought[position] += "purchase" in outcomes.get(position, ())
        feedback = cls()
        for query, products, outcomes in lists:
            for position, product_id in enumerate(products, start=1):
                row = feedback.counts.setdefault(f"{query}\t{product_id}", [0, 0, 0, 0.0, 0.0])
                row[0] += 1
                row[1] += "view" in outcomes.get(position, ())
                row[2] += "purchase" in outcomes.get(position, ())
                row[3] += clicked[position] / shown[position]
                row[4] += bought[position] / shown[position]
        return feedback

    def of(self, query: str, product_id: str) -> list[float]:
        return self.counts.get(f"{query}\t{product_id}", [0, 0, 0, 0.0, 0.0])


def features(query: str, hits: Sequence[SearchHit], feedback: Feedback, popularity: dict[str, float]) -> np.ndarray:
    """One row of FEATURES per candidate, in the order given (the hybrid order)."""
    words = set(normalise_query(query).split())
    rows = []
    for i, hit in enumerate(hits):
        product = hit.product
        category = f"{product.get('category', '')} {product.get('sub_category', '')}".lower().split()
        shown, clicks, purchases, expected_clicks, expected_purchases = feedback.of(
            normalise_query(query), product["product_id"])
        rows.append([i + 1, hit.score, math.log1p(popularity.get(product["product_id"], 0.0)),
                     math.log1p(product.get("price") or 0.0), product.get("rating") or 0.0,
                     float(bool(words & set(category))), math.log1p(shown),
                     (clicks + 1) / (expected_clicks + 1), (purchases + 0.5) / (expected_purchases + 0.5)])
    return np.asarray(rows, dtype=np.float64)


class FeedbackRanker:
    """fit / score / save / load, in the style of the other models."""

    def __init__(self, booster=None, feedback: Feedback | None = None):
        self.booster = booster
        self.feedback = feedback or Feedback()

    def fit(self, x: np.ndarray, y: np.ndarray, groups: Sequence[int], seed: int = 0) -> "FeedbackRanker":
        import lightgbm

        model = lightgbm.LGBMRanker(objective="lambdarank", n_estimators=200, learning_rate=0.05, num_leaves=15,
                                    min_child_samples=20, random_state=seed, verbose=-1, n_jobs=1)
        model.fit(x, y, group=list(groups))
        self.booster = model.booster_
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(x, num_threads=1)

    def rerank(self, query: str, hits: Sequence[SearchHit], popularity: dict[str, float]) -> list[SearchHit]:
        """The hits in the ranker's order (ties keep the hybrid order)."""
        if not hits:
            return list(hits)
        scores = self.score(features(query, hits, self.feedback, popularity))
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        return [SearchHit(hits[i].product, float(scores[i]), hits[i].retrievers) for i in order]

    def save(self, directory: Path, metrics: dict) -> Path:
        directory.mkdir(parents=True)
        self.booster.save_model(str(directory / MODEL_FILE))
        (directory / FEEDBACK_FILE).write_text(json.dumps(self.feedback.counts))
        (directory / "metrics.json").write_text(json.dumps(metrics, indent=2))  # written last: complete
        return directory

    @classmethod
    def load(cls, directory: Path) -> "FeedbackRanker":
        import lightgbm

        return cls(lightgbm.Booster(model_file=str(directory / MODEL_FILE)),
                   Feedback(json.loads((directory / FEEDBACK_FILE).read_text())))


def logged_search_lists(engine: Engine) -> list[tuple[str, list[str], dict[int, set[str]]]]:
    """(query, products shown, position → event types) of every logged search list, oldest first."""
    with engine.connect() as connection:
        shown = connection.execute(select(impressions.c.request_id, impressions.c.params, impressions.c.product_ids)
                                   .where(impressions.c.surface == "search").order_by(impressions.c.created_at)).all()
        done = connection.execute(select(event_attributions.c.request_id, event_attributions.c.position,
                                         event_attributions.c.event_type)).all()
    outcomes: dict[str, dict[int, set[str]]] = {}
    for request_id, position, event_type in done:
        outcomes.setdefault(request_id, {}).setdefault(position, set()).add(event_type)
    return [(normalise_query(params.get("q", "")), product_ids, outcomes.get(request_id, {}))
            for request_id, params, product_ids in shown if params.get("q")]


def labelled_search_lists(engine: Engine) -> int:
    """How many logged search lists led to at least one attributed event (what the ranker learns from)."""
    with engine.connect() as connection:
        return int(connection.execute(
            select(func.count(event_attributions.c.request_id.distinct()))
            .join(impressions, impressions.c.request_id == event_attributions.c.request_id)
            .where(impressions.c.surface == "search")).scalar_one())


def train(lists, candidates, popularity: dict[str, float], min_lists: int,
          seed: int = 0) -> tuple[FeedbackRanker, dict]:
    """Fit on logged lists. `candidates(query)` gives the query's hybrid hits now (features are read from them);
    ValueError with fewer than `min_lists` lists that led to an event."""
    labelled = sum(1 for _, _, outcomes in lists if outcomes)
    if labelled < min_lists:
        raise ValueError(f"{labelled} labelled search lists; at least {min_lists} are needed")
    half = len(lists) // 2
    history = Feedback.of_lists(lists[:half])
    hits_of: dict[str, dict[str, SearchHit]] = {}
    xs, ys, groups = [], [], []
    for query, shown, outcomes in lists[half:]:
        if not outcomes:
            continue  # a list nobody acted on orders nothing
        if query not in hits_of:
            hits_of[query] = {hit.product["product_id"]: hit for hit in candidates(query)}
        hits = list(hits_of[query].values())  # the whole pool: a candidate not shown counts as not chosen
        if len(hits) < 2:
            continue
        label = {p: max((LABELS[e] for e in outcomes.get(position, ()) if e in LABELS), default=0)
                 for position, p in enumerate(shown, start=1)}
        xs.append(features(query, hits, history, popularity))
        ys.extend(label.get(hit.product["product_id"], 0) for hit in hits)
        groups.append(len(hits))
    if not groups:
        raise ValueError("no labelled search list in the newer half of the log")
    ranker = FeedbackRanker(feedback=Feedback.of_lists(lists)).fit(np.vstack(xs), np.asarray(ys), groups, seed)
    return ranker, {"lists": len(lists), "training_lists": len(groups), "rows": int(sum(groups)),
                    "features": list(FEATURES)}


def latest_ranker_dir(root: Path) -> Path | None:
    complete = sorted(p for p in root.glob("*") if (p / "metrics.json").exists()) if root.exists() else []
    return complete[-1] if complete else None


class ServedRanker:
    """The newest complete ranker directory under `root`, looked for at most every `check_seconds`."""

    def __init__(self, root: Path, check_seconds: float):
        self.root = Path(root)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._ranker: FeedbackRanker | None = None
        self._directory: Path | None = None
        self._checked_at = float("-inf")

    @property
    def ranker(self) -> FeedbackRanker | None:
        if time.monotonic() - self._checked_at >= self.check_seconds:
            with self._lock:
                self._checked_at = time.monotonic()
                newest = latest_ranker_dir(self.root)
                if newest is not None and newest != self._directory:
                    try:
                        self._ranker, self._directory = FeedbackRanker.load(newest), newest
                        log.info("serving ranker %s", newest.name)
                    except Exception:
                        log.exception("could not load ranker %s; still serving %s", newest, self._directory)
        return self._ranker

    def rerank(self, query: str, hits: list[SearchHit], popularity_of) -> list[SearchHit]:
        """The hits reordered by the served ranker; as they are while none is trained."""
        ranker = self.ranker
        if ranker is None:
            return hits
        return ranker.rerank(query, hits, popularity_of([hit.product["product_id"] for hit in hits]))


def ndcg_at(relevance_in_order: Iterable[float], ideal: Iterable[float], k: int = 10) -> float:
    """nDCG@k of graded relevances in the order shown, against the best order of `ideal`."""
    def dcg(values):
        return sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(list(values)[:k]))
    best = dcg(sorted(ideal, reverse=True))
    return dcg(relevance_in_order) / best if best else 0.0


def train_served(res, seed: int = 0) -> dict:
    """Train on the service's own log and candidates; write a new version under MODELS_DIR/ranker."""
    from app.storage.milvus_filters import ProductFilter

    def candidates(query: str) -> list[SearchHit]:
        sparse = res.encoder.encode_query_sparse(query) if res.products.learned_sparse else query
        return res.products.search(res.encoder.encode_query(query), sparse, ProductFilter(),
                                   limit=res.settings.hybrid_candidates).hits

    lists = logged_search_lists(res.events.engine)
    product_ids = sorted({p for _, shown, _ in lists for p in shown})
    ranker, metrics = train(lists, candidates, res.events.popularity_of(product_ids),
                            res.settings.ranker_min_feedback_lists, seed)
    directory = res.settings.resolved_models_dir / "ranker" / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    ranker.save(directory, metrics)
    return {"model_dir": str(directory), **metrics}
