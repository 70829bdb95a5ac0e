"""`python -m ncf train ...` writes a new versioned model directory; `python -m ncf evaluate DIR` re-scores it.

Training evaluates NeuMF (and the baselines) on a leave-one-out split, then refits NeuMF on every
interaction for serving (`--no-refit`: serve the evaluation run's weights). NeuMF's items carry the source's
attributes (`--no-item-features`: ids only): MovieLens genres, or the category, sub-category and brand of
the products in the Milvus products collection. With them, NeuMF's logit also weighs the user's shares of
the item's attribute values (`--no-attribute-shares`: not); on by default for the event store, off for
MovieLens, where they lowered validation NDCG@10 (see SOURCE_DEFAULTS).

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

from app.config.devices import resolve_device
from app.config.settings import DEVICES

from .baselines import MF_CONFIG, MatrixFactorization, TopPop
from .data import (
    PRODUCT_ATTRIBUTES, Interactions, from_event_store, from_movielens, latest_event_row, movielens_genres,
    product_attributes,
)
from .evaluate import evaluate
from .mappings import ItemFeatures
from .recommender import NCFRecommender
from .train import History, TrainConfig, split_data

PLOT_FILE, HISTORY_FILE = "training_results.png", "history.json"
ABANDONED_PARTIAL_SECONDS = 3600  # a `.partial` directory untouched this long belongs to a killed run
# chosen on validation per source: genre shares took MovieLens validation NDCG@10 from 0.5011 to 0.4922 (seed 0)
SOURCE_DEFAULTS = {"movielens": {"attribute_shares": False}}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            print(train(args))
        else:
            print(json.dumps(evaluate_model_dir(Path(args.model_dir), args.database_url), indent=2))
    except ValueError as exc:  # bad data or settings: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ncf", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train NeuMF and the baselines, write a model directory")
    train_parser.add_argument("--source", choices=("events", "movielens"), required=True)
    train_parser.add_argument("--path", type=Path, help="MovieLens directory holding ratings.csv")
    train_parser.add_argument("--database-url", help="events: the event store (default: the service settings)")
    train_parser.add_argument("--out", type=Path, help="models root (default: $DATA_DIR/models)")
    for name, kind in (("epochs", int), ("batch-size", int), ("lr", float), ("embed-dim", int),
                       ("negatives", int), ("l2", float), ("seed", int), ("patience", int)):
        train_parser.add_argument(f"--{name}", type=kind, help=f"default {getattr(TrainConfig, name.replace('-', '_'))}")
    train_parser.add_argument("--threads", type=int, help="torch threads (default $OMP_NUM_THREADS, else every core)")
    train_parser.add_argument("--device", choices=DEVICES, help="auto|cpu|cuda|mps (default: TRAINING_DEVICE, auto)")
    train_parser.add_argument("--layers", type=lambda text: tuple(int(size) for size in text.split(",")),
                              help="MLP layer sizes, e.g. 128,64,32")
    train_parser.add_argument("--no-refit", dest="refit", action="store_false", default=None,
                              help="serve the evaluation run's weights instead of NeuMF refit on every interaction")
    train_parser.add_argument("--item-features", action=argparse.BooleanOptionalAction, default=None,
                              help="NeuMF item vectors add the embeddings of the items' attributes (MovieLens "
                                   "genres; products' category, sub_category, brand from Milvus); default on")
    train_parser.add_argument("--attribute-shares", action=argparse.BooleanOptionalAction, default=None,
                              help="with item features, NeuMF's logit weighs the user's shares of the item's "
                                   "attribute values; default on for events, off for MovieLens")
    evaluate_parser = commands.add_parser("evaluate", help="re-evaluate a saved model on its split, print JSON")
    evaluate_parser.add_argument("model_dir")
    evaluate_parser.add_argument("--database-url", help="events: the event store (default: the service settings)")
    return parser


def train(args: argparse.Namespace) -> Path:
    """Train NeuMF, MF and TopPop on one split, evaluate them on its test users, write the model directory.

    The directory serves NeuMF refit on every interaction (unless `--no-refit`); metrics.json measures the
    evaluation run's weights, kept as evaluation_model.pt.
    """
    overrides = {name: value for name, value in vars(args).items()
                 if value is not None and name in TrainConfig.__dataclass_fields__}
    overrides["device"] = resolve_device(args.device or _settings().training_device)
    config = replace(TrainConfig(), **{**SOURCE_DEFAULTS.get(args.source, {}), **overrides})
    interactions, source = _load_source(args.source, args.path, args.database_url)
    split = split_data(interactions, config)
    item_features = item_features_of(source, interactions) if config.item_features else None
    recommender = NCFRecommender(config).fit(interactions, item_features)
    mf_config = replace(MF_CONFIG, **{name: getattr(config, name) for name in (
        "seed", "eval_negatives", "split_seed", "threads", "progress")})
    mf = MatrixFactorization().fit(interactions, mf_config)
    toppop = TopPop().fit(interactions, config)
    recommender.source = source
    recommender.metrics = {
        "neumf": _metrics(recommender.evaluation_model, split, recommender.history.train_seconds),
        "mf": _metrics(mf, split, mf.train_seconds),
        "toppop": _metrics(toppop, split, toppop.train_seconds),
        "data": _data_summary(interactions),
    }
    root = args.out or _settings().data_dir / "models"
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


def evaluate_model_dir(directory: Path, database_url: str | None = None) -> dict:
    """The saved evaluation-run NeuMF's metrics on the test users of the split it was trained on."""
    recommender = NCFRecommender.load(directory, evaluation=True)
    source = recommender.source
    if source["kind"] == "movielens":
        interactions = from_movielens(source["path"])
    else:
        interactions = from_event_store(database_url or _settings().resolved_database_url, source["event_weights"],
                                        source["merge"], source["max_row_id"])
    if interactions.user_ids != recommender.user_ids or interactions.item_ids != recommender.item_ids:
        raise SystemExit(f"the training data of {directory} has changed: its split cannot be rebuilt")
    split = split_data(interactions, recommender.config)
    return {"neumf": evaluate(recommender.evaluation_model, split.test, interactions.n_items),
            "data": _data_summary(interactions)}


def _load_source(kind: str, path: Path | None, database_url: str | None) -> tuple[Interactions, dict]:
    if kind == "movielens":
        if path is None:
            raise SystemExit("--source movielens needs --path DIR (the directory of ratings.csv)")
        return from_movielens(path), {"kind": "movielens", "path": str(path.resolve())}
    settings = _settings()
    url = database_url or settings.resolved_database_url
    max_row_id = latest_event_row(url)
    return from_event_store(url, settings.event_weights, "max", max_row_id), {
        "kind": "events", "database": replace(settings, database_url=url).public_database_url,
        "event_weights": settings.event_weights, "merge": "max", "max_row_id": max_row_id}


def item_features_of(source: dict, interactions: Interactions) -> ItemFeatures | None:
    """The items' attributes from the source. When the product store cannot be read, or no item has an
    attribute, NeuMF gets ids only: a warning says so, and `source["item_features_unavailable"]` why."""
    if source["kind"] == "movielens":
        attributes, fields = movielens_genres(source["path"]), ("genre",)
    else:
        from pymilvus import MilvusException

        from app.storage.availability import StoreUnavailable

        try:
            attributes, fields = product_attributes(_settings()), PRODUCT_ATTRIBUTES
        except (MilvusException, StoreUnavailable, RuntimeError) as exc:
            return _without_item_features(source, f"the products collection could not be read: {exc}")
    features = ItemFeatures.from_attributes(interactions.item_ids, attributes, fields)
    return features if len(features.values) else _without_item_features(source, "no item has attributes")


def _without_item_features(source: dict, reason: str) -> None:
    source["item_features_unavailable"] = reason[:300]
    print(f"warning: NeuMF gets no item features, {reason}", file=sys.stderr)
    return None


def _settings():
    from app.config.settings import Settings

    return Settings.from_env()


if __name__ == "__main__":
    sys.exit(main())
