"""The service's data for ncf: its SQL events as Interactions, its products' attributes as item features, and
`python -m app.ops.cli train` / `evaluate-model` (ncf is a library: it reads no store of the service).

An event weighs its type's EVENT_WEIGHT; a model trained on the events records the highest event row it
read, so `evaluate-model` rebuilds the same split later.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pymilvus import MilvusException
from sqlalchemy import func, select

from app.config.settings import Settings
from app.storage.availability import StoreUnavailable
from app.storage.events import events, make_engine
from app.storage.products import ProductStore, connect
from ncf.data import Interactions, from_records
from ncf.mappings import ItemFeatures
from ncf.movielens import load_source as load_file_source, movielens_features
from ncf.run import add_train_options, evaluate_model_dir, item_features, train, train_config

PRODUCT_ATTRIBUTES = ("category", "sub_category", "brand")  # the item features of the event-store source


def event_interactions(database_url: str, event_weights: dict[str, float], merge: str = "max",
                       max_row_id: int | None = None) -> Interactions:
    """The `events` table (rows up to `max_row_id`, if given); an event weighs its type's weight. Events
    whose type has no positive weight are ignored."""
    query = select(events.c.user_id, events.c.product_id, events.c.event_type, events.c.occurred_at)
    if max_row_id is not None:
        query = query.where(events.c.id <= max_row_id)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        engine.dispose()
    rows = [row for row in rows if event_weights.get(row.event_type, 0.0) > 0]
    if not rows:
        raise ValueError("the event store has no weighted events to train on")
    return from_records([row.user_id for row in rows], [row.product_id for row in rows],
                        [event_weights[row.event_type] for row in rows], [row.occurred_at for row in rows],
                        merge=merge)


def latest_event_row(database_url: str) -> int:
    """The highest row id of the `events` table (0 when empty): pins the events a model was trained on."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())
    finally:
        engine.dispose()


def product_attributes(settings: Settings) -> dict[str, list[str]]:
    """Each product's PRODUCT_ATTRIBUTES from the Milvus products collection, as values `field=...` by id
    (empty values left out; {} when the collection does not exist)."""
    client = connect(settings)
    try:  # closed at once: an idle client would keep the connection (and its keepalive pings) during training
        store = ProductStore(client, settings, dimension=0)  # only scanned: the vector dimension is not used
        if not client.has_collection(store.collection):
            return {}
        rows = store.scan(["product_id", *PRODUCT_ATTRIBUTES])
    finally:
        client.close()
    return {row["product_id"]: [f"{field}={row[field]}" for field in PRODUCT_ATTRIBUTES if row.get(field)]
            for row in rows}


def item_features_of(source: dict, interactions: Interactions, settings: Settings) -> ItemFeatures | None:
    """The items' attributes of the source: MovieLens genres, or the products' attributes in Milvus (ids
    only, with a warning, when the products collection cannot be read)."""
    if source["kind"] == "movielens":
        return movielens_features(source, interactions)
    try:
        attributes = product_attributes(settings)
    except (MilvusException, StoreUnavailable, RuntimeError) as exc:
        return item_features(source, interactions, None, PRODUCT_ATTRIBUTES,
                             f"the products collection could not be read: {exc}")
    return item_features(source, interactions, attributes, PRODUCT_ATTRIBUTES)


def events_source(settings: Settings, database_url: str | None = None) -> tuple[Interactions, dict]:
    """Every weighted event now, and the source description that reloads exactly these."""
    url = database_url or settings.resolved_database_url
    max_row_id = latest_event_row(url)
    return event_interactions(url, settings.event_weights, "max", max_row_id), {
        "kind": "events", "database": settings.model_copy(update={"database_url": url}).public_database_url,
        "event_weights": settings.event_weights, "merge": "max", "max_row_id": max_row_id}


def add_commands(commands, default_device: str) -> None:
    """`train` and `evaluate-model` for `python -m app.ops.cli` (the device default: TRAINING_DEVICE)."""
    trainer = commands.add_parser("train", help="train NeuMF (and the baselines) on the event store, write a "
                                  "new model directory under MODELS_DIR")
    trainer.add_argument("--database-url", help="the event store (default: DATABASE_URL / DATA_DIR)")
    add_train_options(trainer, default_device)
    evaluator = commands.add_parser("evaluate-model", help="re-evaluate a saved model on its split, print JSON")
    evaluator.add_argument("model_dir", type=Path)
    evaluator.add_argument("--database-url", help="the event store (default: DATABASE_URL / DATA_DIR)")


def served_item_source(settings: Settings) -> dict:
    """TrainConfig values that follow the service: the item source's recency, which the blender learns with."""
    return {"recent_items": settings.recommendation_recent_items, "recent_decay": settings.recommendation_recent_decay}


def train_on_events(args: argparse.Namespace, settings: Settings) -> Path:
    """`python -m app.ops.cli train`: NeuMF, MF and TopPop on the event store, written under MODELS_DIR."""
    config = train_config(args, served_item_source(settings))
    interactions, source = events_source(settings, args.database_url)
    features = item_features_of(source, interactions, settings) if config.item_features else None
    return train(interactions, source, config, features, args.out or settings.resolved_models_dir)


def evaluate_model(directory: Path, settings: Settings, database_url: str | None = None) -> dict:
    """`python -m app.ops.cli evaluate-model DIR`: the model's evaluation run re-scored on its split."""
    def load(source: dict) -> Interactions:
        if source["kind"] != "events":
            return load_file_source(source)
        return event_interactions(database_url or settings.resolved_database_url, source["event_weights"],
                                  source["merge"], source["max_row_id"])
    return evaluate_model_dir(directory, load)
