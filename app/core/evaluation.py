"""Leave-last-out replay of the served recommender: `python -m app.ops.cli evaluate-recommendations`.

The events (the event store's, or MovieLens ratings) are split as NCF splits them (each user's latest
interaction is the test item, the one before it the validation item). The training part goes into a fresh
event store and a fresh users collection beside the service's catalogue, a model is trained on it and
served from a models directory, and each held-out user is asked for recommendations through the same
`Recommender` the endpoint uses, every strategy over the whole catalogue with everything the user touched
excluded; the hybrid with each blend (rank, learned). Beside them: all-time TopPop over the training part,
the served model ranking the whole catalogue by itself (no Milvus, no filters: its offline figure), the
recall of the hybrid's candidate union (the ceiling of any blend), and paired bootstrap intervals of the
hybrid's differences to every other row.
"""
from __future__ import annotations

import json
import random
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ncf.data import Interactions, from_records, leave_one_out
from ncf.evaluate import list_metrics
from ncf.movielens import MOVIELENS_DEFAULTS
from ncf.recommender import NCFRecommender, latest_model_dir
from ncf.train import TrainConfig

from app.config.settings import Settings
from app.core.collaborative import ServedModel
from app.core.ingest import EventIngestor
from app.core.recommend import BLENDS, SOURCES, STRATEGIES, Recommender
from app.core.resources import Resources
from app.core.training_data import event_interactions, item_features_of
from app.storage.collaborative_index import CollaborativeIndex
from app.storage.events import EVENT_TYPES, Event, EventStore, make_engine
from app.storage.products import DENSE_FIELD
from app.storage.users import UserVectorStore

SPLITS = ("validation", "test")
K, RECALL_K = 10, 50
WEIGHT_STEPS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # tried per source, the others held (coordinate ascent)
RANK_CONSTANTS = (5, 20, 60)
GET_CHUNK = 1000  # products read from Milvus at once
BOOTSTRAP = 2000  # resamples of the users for the paired intervals
UNION = "candidate union (any blend's ceiling)"


@dataclass
class Replay:
    """One split replayed: the recommender over the training part and each held-out user's item."""

    recommender: Recommender
    model: NCFRecommender
    train: Interactions
    held_out: dict[str, str]  # user → held-out product
    touched: dict[str, set[str]]  # user → products of the training part
    n_products: int
    popular: list[str]  # by training interactions, most first (all-time TopPop)


def load_events(res: Resources, movielens: Path | None) -> list[Event]:
    """MovieLens ratings (as `seed movielens` stores them), or every event of the service's event store."""
    if movielens is None:
        from sqlalchemy import select

        from app.storage.events import events as table

        with res.events.engine.connect() as connection:
            rows = connection.execute(select(table).order_by(table.c.id)).mappings()
            return [Event(row["event_id"], row["user_id"], row["product_id"], row["event_type"], row["rating"],
                          row["occurred_at"]) for row in rows]
    from seed.interactions import read_movielens_ratings

    from app.core.event_input import EventIn

    now = datetime.now(timezone.utc)
    return [EventIn.model_validate(record).to_event(now) for record in read_movielens_ratings(movielens)]


def replay(res: Resources, events: list[Event], split: str, workdir: Path, config: TrainConfig,
           source: dict, users: int | None = None, reuse: bool = False) -> Replay:
    """The training part of `split` in fresh stores under `workdir`, a model trained on it and served;
    `users`: a fixed random sample of that many held-out users (the only user vectors built); `reuse`: the
    stores and model an earlier run of the same split left in `workdir` (to try other blend settings)."""
    weights = res.settings.event_weights
    weighted = [event for event in events if weights.get(event.event_type, 0.0) > 0]
    interactions = from_records([e.user_id for e in weighted], [e.product_id for e in weighted],
                                [weights[e.event_type] for e in weighted], [e.occurred_at for e in weighted])
    split_of = leave_one_out(interactions, config.eval_negatives, config.split_seed)
    chosen = split_of.validation if split == "validation" else split_of.test
    dropped = {(interactions.user_ids.ids[u], interactions.item_ids.ids[i])
               for held in ([split_of.validation, split_of.test] if split == "validation" else [split_of.test])
               for u, i in zip(held.users, held.items)}
    training = [event for event in events if (event.user_id, event.product_id) not in dropped]
    held_out = {interactions.user_ids.ids[u]: interactions.item_ids.ids[i] for u, i in zip(chosen.users, chosen.items)}
    held_out = {user: held_out[user] for user in sample_users(held_out, users)}
    products = res.products
    vectors = UserVectorStore(res.client, f"eval_users_{split}", products.dimension)
    store = EventStore(make_engine(f"sqlite:///{workdir / 'events.db'}"), weights,
                       res.settings.popularity_half_life_days)
    train = None
    if reuse and latest_model_dir(workdir / "models") is not None and res.client.has_collection(vectors.collection):
        model = NCFRecommender.load(latest_model_dir(workdir / "models"), evaluation=True)
        _progress(f"{split}: reusing the stores and model of {workdir}")
        if model.blender is None and config.blender:  # a model trained before blenders, or its blender removed
            train = event_interactions(f"sqlite:///{workdir / 'events.db'}", weights)
            if model.fit_blender(train) is not None:
                model.blender.save(latest_model_dir(workdir / "models"))
            _progress(f"{split}: blender fitted {model.blender.info if model.blender else None}")
    else:
        model = _build(res, store, vectors, training, held_out, config, source, workdir)
    train = train or event_interactions(f"sqlite:///{workdir / 'events.db'}", weights)
    served = ServedModel(workdir / "models", check_seconds=0.0, index=CollaborativeIndex(res.client)
                         if res.settings.collaborative_retrieval == "ann" else None)
    if served.current() is None:
        raise RuntimeError(f"the model trained for the replay is not served from {workdir / 'models'}")
    recommender = Recommender.from_settings(res.settings, products, vectors, store, served,
                                            popular_cache_seconds=0.0, exclude=EVENT_TYPES)
    touched: dict[str, set[str]] = {}
    for event in training:
        touched.setdefault(event.user_id, set()).add(event.product_id)
    counts = np.bincount(train.items, minlength=train.n_items)
    popular = [train.item_ids.ids[i] for i in np.lexsort((np.arange(len(counts)), -counts))]
    return Replay(recommender, model, train, held_out, touched, products.count(), popular)


def _build(res: Resources, store: EventStore, vectors: UserVectorStore, training: list[Event],
           held_out: dict[str, str], config: TrainConfig, source: dict, workdir: Path) -> NCFRecommender:
    """Store the training events, build the held-out users' vectors, train and save the model."""
    split = vectors.collection.removeprefix("eval_users_")
    store.engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    store.init_schema()
    products = res.products
    categories = {product_id: row["category"] for product_id, row in
                  products.get({e.product_id for e in training}, fields=("product_id", "category")).items()}
    with store.write_transaction() as connection:
        store.add(connection, training, categories)
    _progress(f"{split}: {len(training)} training events stored")
    if res.client.has_collection(vectors.collection):
        res.client.drop_collection(vectors.collection)
    vectors.ensure_collection()
    EventIngestor(store, products, vectors, store.weights, res.settings.user_vector_half_life_days).rebuild(
        sorted(held_out), chunk_size=50, product_vectors=_product_vectors(products, {e.product_id for e in training}))
    _progress(f"{split}: user vectors rebuilt")
    model = _train(event_interactions(str(store.engine.url), store.weights), config, source, workdir / "models",
                   res.settings)
    _progress(f"{split}: model trained ({model.served['epochs']} epochs)")
    return model


def _product_vectors(products, product_ids: set[str]) -> dict[str, np.ndarray]:
    """In reads of GET_CHUNK: Milvus Lite took 0.3 s for 2,000 vectors and 213 s for 5,000 in one read."""
    ids, found = sorted(product_ids), {}
    for start in range(0, len(ids), GET_CHUNK):
        rows = products.get(ids[start:start + GET_CHUNK], fields=("product_id", DENSE_FIELD))
        found.update({product_id: row[DENSE_FIELD] for product_id, row in rows.items()})
    return found


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _train(train: Interactions, config: TrainConfig, source: dict, models: Path, settings: Settings) -> NCFRecommender:
    features = item_features_of(dict(source), train, settings) if config.item_features else None
    model = NCFRecommender(config).fit(train, features)
    model.metrics, model.source = {}, source
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    model.save(models / f"ncf-{stamp}-0000e7a1")  # the name `latest_model_dir` serves
    return model


def evaluate(run: Replay, users: Sequence[str], tune: bool) -> dict:
    """Per strategy (the hybrid with each blend) and the references: hr@10, ndcg@10, recall@50, coverage@10,
    which strategy and blend served; the candidate union's recall; paired intervals of the hybrid's differences."""
    targets = [run.held_out[user] for user in users]
    rows: dict[str, dict] = {}
    lists: dict[str, list[list[str]]] = {}
    default = run.recommender.blend_default
    runs = [(strategy, strategy, None) for strategy in STRATEGIES]
    runs[1:1] = [(f"hybrid, {blend} blend", "hybrid", blend) for blend in BLENDS if blend != default]
    for name, strategy, blend in runs:
        answers, served = [], {}
        for user in users:
            result = run.recommender.recommend(user, strategy, RECALL_K, blend=blend)
            answers.append([item.product["product_id"] for item in result.items])
            key = result.strategy if strategy != "hybrid" else f"{result.strategy} ({result.blend})"
            served[key] = served.get(key, 0) + 1
        lists[name] = answers
        rows[name] = {**list_metrics(answers, targets, run.n_products, K, RECALL_K), "served_as": served}
        _progress(f"{name}: hr@{K} {rows[name][f'hr@{K}']:.4f}")
    lists["all-time TopPop (training part)"] = [_top_pop(run, user) for user in users]
    lists["NCF model alone, whole catalogue"] = [
        [product_id for product_id, _ in run.model.recommend(user, RECALL_K, run.touched.get(user, ()))]
        for user in users]
    for name in ("all-time TopPop (training part)", "NCF model alone, whole catalogue"):
        rows[name] = list_metrics(lists[name], targets, run.n_products, K, RECALL_K)
    unions = [run.recommender.candidate_union(user) for user in users]
    rows[UNION] = {"recall": float(np.mean([target in union.product_ids for union, target in zip(unions, targets)])),
                   "mean size": float(np.mean([len(union.product_ids) for union in unions]))}
    result = {"strategies": rows, "paired": paired(lists, targets), "weights": run.recommender.weights,
              "rank_constant": run.recommender.rank_constant, "blend": default}
    if tune:
        result["tuning"] = tune_blend(run, unions, targets)
    return result


def paired(lists: dict[str, list[list[str]]], targets: Sequence[str], seed: int = 0) -> dict[str, dict]:
    """The hybrid minus every other row, per user (HR@10, NDCG@10): mean and 95% bootstrap interval."""
    def per_user(answers):
        positions = np.array([answer[:K].index(t) if t in answer[:K] else K for answer, t in zip(answers, targets)])
        return {f"hr@{K}": (positions < K).astype(float),
                f"ndcg@{K}": np.where(positions < K, 1.0 / np.log2(positions + 2.0), 0.0)}

    hybrid = per_user(lists["hybrid"])
    draws = np.random.default_rng(seed).integers(0, len(targets), size=(BOOTSTRAP, len(targets)))
    result = {}
    for name, answers in lists.items():
        if name == "hybrid":
            continue
        other = per_user(answers)
        result[name] = {}
        for metric, values in hybrid.items():
            difference = values - other[metric]
            means = difference[draws].mean(axis=1)
            result[name][metric] = [float(difference.mean()), *map(float, np.quantile(means, [0.025, 0.975]))]
    return result


def _top_pop(run: Replay, user: str) -> list[str]:
    touched = run.touched.get(user, set())
    return [product_id for product_id in run.popular[:RECALL_K + len(touched)] if product_id not in touched
            ][:RECALL_K]


def tune_blend(run: Replay, unions: Sequence, targets: Sequence[str]) -> dict:
    """Weights and rank constant maximising NDCG@10: coordinate ascent over WEIGHT_STEPS per source, two
    rounds, for each of RANK_CONSTANTS, on the users' candidate unions (gathered once)."""
    recommender = run.recommender
    n_products = run.n_products

    def measure(weights: dict[str, float], constant: int) -> dict[str, float]:
        recommender.rank_constant = constant
        answers = []
        for candidates in unions:
            order = recommender.blend(candidates, weights)[0] if candidates.product_ids else []
            answers.append([candidates.product_ids[i] for i in order[:RECALL_K]])
        return list_metrics(answers, targets, n_products, K, RECALL_K)

    trials, best = [], None
    for constant in RANK_CONSTANTS:
        weights = dict.fromkeys(SOURCES, 1.0)
        score = measure(weights, constant)
        for _ in range(2):
            for source in SOURCES:
                for step in WEIGHT_STEPS:
                    trial = {**weights, source: step}
                    if not any(trial.values()):
                        continue
                    metrics = measure(trial, constant)
                    trials.append({"weights": trial, "rank_constant": constant, **metrics})
                    if metrics[f"ndcg@{K}"] > score[f"ndcg@{K}"]:
                        weights, score = trial, metrics
        if best is None or score[f"ndcg@{K}"] > best["metrics"][f"ndcg@{K}"]:
            best = {"weights": weights, "rank_constant": constant, "metrics": score}
    recommender.rank_constant = best["rank_constant"]
    return {"best": best, "trials": len(trials)}


def sample_users(held_out: Iterable[str], limit: int | None, seed: int = 0) -> list[str]:
    users = sorted(held_out)
    return users if limit is None or limit >= len(users) else sorted(random.Random(seed).sample(users, limit))


def markdown(result: dict, split: str) -> str:
    """The strategies' table, best first within the service's strategies, then the references."""
    lines = [f"| {split} ({result['users']} users) | HR@{K} | NDCG@{K} | recall@{RECALL_K} | coverage@{K} |",
             "|---|---|---|---|---|"]
    for name, row in result["strategies"].items():
        if name == UNION:
            continue
        label = f"`{name}`" if name.split(",")[0] in STRATEGIES else name
        lines.append(f"| {label} | {row[f'hr@{K}']:.4f} | {row[f'ndcg@{K}']:.4f} | {row[f'recall@{RECALL_K}']:.4f} "
                     f"| {row[f'coverage@{K}']:.4f} |")
    union = result["strategies"][UNION]
    lines += ["", f"{UNION}: recall {union['recall']:.4f}, mean size {union['mean size']:.0f}", "",
              f"| `hybrid` ({result['blend']} blend) minus | HR@{K} (95% CI) | NDCG@{K} (95% CI) |", "|---|---|---|"]
    for name, metrics in result["paired"].items():
        lines.append(f"| {name} | " + " | ".join(f"{mean:+.4f} ({low:+.4f}, {high:+.4f})"
                                                for mean, low, high in metrics.values()) + " |")
    return "\n".join(lines)


def run(res: Resources, split: str, movielens: Path | None, users: int | None, tune: bool, workdir: Path,
        config: TrainConfig, out: Path | None, reuse: bool = False) -> dict:
    """The whole command: replay, evaluate, print Markdown, write JSON."""
    started = time.perf_counter()
    source = ({"kind": "movielens", "path": str(movielens.resolve())} if movielens is not None else {"kind": "events"})
    if movielens is not None:
        config = replace(config, **MOVIELENS_DEFAULTS)  # as `python -m ncf train` for MovieLens
    replayed = replay(res, load_events(res, movielens), split, workdir, config, source, users, reuse)
    chosen = sorted(replayed.held_out)
    result = {"split": split, "users": len(chosen), "source": source, "catalogue": replayed.n_products,
              **evaluate(replayed, chosen, tune), "seconds": round(time.perf_counter() - started, 1)}
    print(markdown(result, split))
    if tune:
        best = result["tuning"]["best"]
        print(f"\nbest on {split}: weights {','.join(f'{s}:{w:g}' for s, w in best['weights'].items())}, "
              f"rank constant {best['rank_constant']}: " + ", ".join(f"{k} {v:.4f}" for k, v in best["metrics"].items()))
    if out is not None:
        out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result
