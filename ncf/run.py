"""A training run: NeuMF, MF and TopPop on one leave-one-out split of some interactions, evaluated on its
test users, then written as a versioned model directory (NeuMF refit on every interaction unless
`refit=False`). The data comes from the caller: `python -m ncf train` reads files (MovieLens), the service's
`python -m app.ops.cli train` its event store (app/core/training_data.py).

A model directory is written under a hidden temporary name next to its final place and renamed when
every file is there, so a killed training never leaves a directory that `latest_model_dir` would serve.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .baselines import MF_CONFIG, MatrixFactorization, TopPop
from .data import Interactions
from .devices import DEVICES, resolve_device
from .evaluate import evaluate
from .mappings import ItemFeatures
from .recommender import NCFRecommender
from .train import History, TrainConfig, split_data

PLOT_FILE, HISTORY_FILE = "training_results.png", "history.json"
ABANDONED_PARTIAL_SECONDS = 3600  # a `.partial` directory untouched this long belongs to a killed run


def add_train_options(parser: argparse.ArgumentParser, default_device: str = "auto") -> None:
    """The TrainConfig options every training command takes (`--epochs`, `--device`, `--no-refit`, ...)."""
    parser.add_argument("--out", type=Path, help="models root (default: the models directory served)")
    for name, kind in (("epochs", int), ("batch-size", int), ("lr", float), ("embed-dim", int),
                       ("negatives", int), ("l2", float), ("seed", int), ("patience", int)):
        parser.add_argument(f"--{name}", type=kind, help=f"default {getattr(TrainConfig, name.replace('-', '_'))}")
    parser.add_argument("--threads", type=int, help="torch threads (default $OMP_NUM_THREADS, else every core)")
    parser.add_argument("--device", choices=DEVICES, default=default_device,
                        help=f"auto|cpu|cuda|mps (default: {default_device})")
    parser.add_argument("--layers", type=lambda text: tuple(int(size) for size in text.split(",")),
                        help="MLP layer sizes, e.g. 128,64,32")
    parser.add_argument("--no-refit", dest="refit", action="store_false", default=None,
                        help="serve the evaluation run's weights instead of NeuMF refit on every interaction")
    parser.add_argument("--item-features", action=argparse.BooleanOptionalAction, default=None,
                        help="NeuMF item vectors add the embeddings of the items' attributes (MovieLens "
                             "genres; products' category, sub_category, brand from Milvus); default on")
    parser.add_argument("--attribute-shares", action=argparse.BooleanOptionalAction, default=None,
                        help="with item features, NeuMF's logit weighs the user's shares of the item's "
                             "attribute values; default on for events, off for MovieLens")


def train_config(args: argparse.Namespace, defaults: Mapping | None = None) -> TrainConfig:
    """TrainConfig from `add_train_options`' arguments over the source's `defaults` (its device resolved)."""
    overrides = {name: value for name, value in vars(args).items()
                 if value is not None and name in TrainConfig.__dataclass_fields__}
    overrides["device"] = resolve_device(args.device)
    return replace(TrainConfig(), **{**(defaults or {}), **overrides})


def item_features(source: dict, interactions: Interactions, attributes: Mapping[str, Sequence[str]] | None,
                  fields: Sequence[str], unavailable: str = "") -> ItemFeatures | None:
    """The items' attributes as NeuMF item features. With no attributes (`unavailable` says why), or none on
    any item, NeuMF gets ids only: a warning says so, and `source["item_features_unavailable"]` why."""
    if attributes is not None:
        features = ItemFeatures.from_attributes(interactions.item_ids, attributes, fields)
        if len(features.values):
            return features
        unavailable = "no item has attributes"
    source["item_features_unavailable"] = unavailable[:300]
    print(f"warning: NeuMF gets no item features, {unavailable}", file=sys.stderr)
    return None


def train(interactions: Interactions, source: dict, config: TrainConfig, features: ItemFeatures | None,
          root: Path) -> Path:
    """Train NeuMF, MF and TopPop on one split, evaluate them on its test users, write the model directory.

    The directory serves NeuMF refit on every interaction (unless `config.refit` is off); metrics.json
    measures the evaluation run's weights, kept as evaluation_model.pt. `source` describes the data (how
    `evaluate_model_dir` reloads it).
    """
    split = split_data(interactions, config)
    recommender = NCFRecommender(config).fit(interactions, features)
    mf_config = replace(MF_CONFIG, **{name: getattr(config, name) for name in (
        "seed", "eval_negatives", "split_seed", "threads", "progress")})
    mf = MatrixFactorization(mf_config).fit(interactions)
    toppop = TopPop().fit(split.train)
    recommender.source = source
    recommender.metrics = {
        "neumf": _metrics(recommender.evaluation_model, split, recommender.history.train_seconds),
        "mf": _metrics(mf, split, mf.train_seconds),
        "toppop": _metrics(toppop, split, toppop.train_seconds),
        "data": _data_summary(interactions),
    }
    return write_model_dir(root, recommender, {"neumf": recommender.history, "mf": mf.history})


def _metrics(model, split, train_seconds: float) -> dict:
    return {**evaluate(model, split.test, split.train.n_items), "train_seconds": round(train_seconds, 3)}


def _data_summary(interactions: Interactions) -> dict:
    return {"users": interactions.n_users, "items": interactions.n_items, "interactions": len(interactions)}


def write_model_dir(root: Path, recommender: NCFRecommender, histories: dict[str, History]) -> Path:
    """Save into `root/.ncf-<time>-<hash>.partial`, then rename it to `root/ncf-<time>-<hash>`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    digest = hashlib.sha1(json.dumps([recommender.config.to_dict(), recommender.source, time.time_ns()],
                                     sort_keys=True, default=str).encode()).hexdigest()[:8]
    final = Path(root) / f"ncf-{stamp}-{digest}"
    partial = final.with_name(f".{final.name}.partial")
    remove_abandoned_partials(Path(root))
    try:
        recommender.save(partial)
        (partial / HISTORY_FILE).write_text(
            json.dumps({name: history.to_dict() for name, history in histories.items()}, indent=2), encoding="utf-8")
        plot_training(histories, partial / PLOT_FILE)
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def remove_abandoned_partials(root: Path, older_than_seconds: float = ABANDONED_PARTIAL_SECONDS) -> None:
    """Delete the `.partial` directories of runs killed before they finished (untouched for an hour: a
    directory being written is only seconds old)."""
    for path in root.glob(".ncf-*.partial"):
        try:
            if time.time() - path.stat().st_mtime > older_than_seconds:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:  # another run removed or renamed it meanwhile
            pass


def plot_training(histories: dict[str, History], path: Path) -> None:
    """Loss, validation HR@10 / NDCG@10 and learning rate by epoch, one line style per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, metric_axis, lr_axis) = plt.subplots(1, 3, figsize=(15, 4.2))
    for (name, history), style in zip(histories.items(), ("-", "--", ":")):
        epochs = [record["epoch"] for record in history.epochs]
        loss_axis.plot(epochs, [record["loss"] for record in history.epochs], style, label=name)
        for metric, color in (("val_hr@10", "tab:blue"), ("val_ndcg@10", "tab:orange")):
            metric_axis.plot(epochs, [record.get(metric, float("nan")) for record in history.epochs], style,
                             color=color, label=f"{name} {metric[4:]}")
        metric_axis.axvline(history.best_epoch, linestyle=style, color="grey", linewidth=0.8)
        lr_axis.plot(epochs, [record["lr"] for record in history.epochs], style, label=name)
    for axis, title in ((loss_axis, "training loss (BCE)"), (metric_axis, "validation (grey: best epoch)"),
                        (lr_axis, "learning rate")):
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.legend()
    lr_axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def evaluate_model_dir(directory: Path, load: Callable[[dict], Interactions]) -> dict:
    """The saved evaluation-run NeuMF's metrics on the test users of the split it was trained on;
    `load(source)` reads the interactions the model's `source` names again."""
    recommender = NCFRecommender.load(directory, evaluation=True)
    interactions = load(recommender.source)
    if interactions.user_ids != recommender.user_ids or interactions.item_ids != recommender.item_ids:
        raise SystemExit(f"the training data of {directory} has changed: its split cannot be rebuilt")
    split = split_data(interactions, recommender.config)
    return {"neumf": evaluate(recommender.evaluation_model, split.test, interactions.n_items),
            "data": _data_summary(interactions)}
