"""app/core/training_data.py: the service's events and product attributes fed to ncf, and
`python -m app.ops.cli train | evaluate-model` (SQLite events, no Milvus: the product attributes are stood in for)."""
from __future__ import annotations

import json

import torch

from app.config.settings import Settings
from app.core.training_data import evaluate_model, event_interactions
from app.ops.cli import main
from app.storage.availability import StoreUnavailable
from app.storage.events import Event, EventStore, make_engine
from ncf.recommender import latest_model_dir
from tests.unit.test_ncf import planted_clusters

WEIGHTS = {"view": 0.1, "add_to_cart": 0.3, "purchase": 0.6, "rating": 0.2}
COMMON = ["--epochs", "2", "--embed-dim", "8", "--layers", "16,8", "--threads", "1", "--no-refit"]


def scores_of(model_metrics: dict) -> dict:
    return {name: value for name, value in model_metrics.items() if name != "train_seconds"}


def stored_events(url: str, data, event_type: str) -> None:
    store = EventStore(make_engine(url), WEIGHTS, 7)
    store.init_schema()
    with store.write_transaction() as connection:
        store.add(connection, [Event(f"e{n}", data.user_ids.ids[u], data.item_ids.ids[i], event_type, None, float(t))
                               for n, (u, i, t) in enumerate(zip(data.users, data.items, data.timestamps))], {})
    store.engine.dispose()


def test_event_interactions_read_the_service_events_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(make_engine(url), WEIGHTS, 7)
    store.init_schema()
    events = [Event("e1", "alice", "p1", "view", None, 10.0), Event("e2", "alice", "p1", "purchase", None, 20.0),
              Event("e3", "alice", "p2", "add_to_cart", None, 15.0), Event("e4", "bob", "p1", "rating", 4.0, 5.0),
              Event("e5", "bob", "p1", "view", None, 30.0)]
    with store.write_transaction() as connection:
        store.add(connection, events, {})
    store.engine.dispose()
    data = event_interactions(url, WEIGHTS)
    rows = {(data.user_ids.ids[u], data.item_ids.ids[i]): (round(float(w), 6), t)
            for u, i, w, t in zip(data.users, data.items, data.weights, data.timestamps)}
    assert rows == {("alice", "p1"): (0.6, 20.0), ("alice", "p2"): (0.3, 15.0), ("bob", "p1"): (0.2, 30.0)}
    summed = event_interactions(url, WEIGHTS, merge="sum")
    assert round(float(summed.weights[0]), 6) == 0.7
    assert len(event_interactions(url, WEIGHTS, max_row_id=3)) == 2  # e4 and e5 came later


def test_the_service_trains_on_its_event_store_and_reevaluates_the_same_split(tmp_path, monkeypatch):
    data = planted_clusters(n_users=60, n_items=120, per_user=12, seed=5)
    attributes = {item: [f"category={int(item[1:]) % 4}", f"brand={int(item[1:]) % 7}"] for item in data.item_ids.ids}
    monkeypatch.setattr("app.core.training_data.product_attributes", lambda settings: attributes)  # as in Milvus
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(make_engine(url), WEIGHTS, 7)
    store.init_schema()
    events = [Event(f"e{n}", data.user_ids.ids[u], data.item_ids.ids[i], "purchase", None, float(t))
              for n, (u, i, t) in enumerate(zip(data.users, data.items, data.timestamps))]
    with store.write_transaction() as connection:
        store.add(connection, events, {})
    store.engine.dispose()
    monkeypatch.setenv("RECOMMENDATION_RECENT_ITEMS", "4")  # the blender learns with the service's item source
    monkeypatch.setenv("RECOMMENDATION_RECENT_DECAY", "0.5")
    out = tmp_path / "models"
    train = ["train", "--database-url", url, "--epochs", "2", "--embed-dim", "8",
             "--layers", "16,8", "--threads", "1", "--out", str(out)]
    assert main(train) == 0
    directory = latest_model_dir(out)
    assert directory is not None and directory.name.startswith("ncf-")
    assert sorted(path.name for path in out.iterdir()) == [directory.name]  # no partial left behind
    assert {"model.pt", "evaluation_model.pt", "mappings.json", "config.json", "metrics.json", "item_features.json",
            "training_results.png"} <= {path.name for path in directory.iterdir()}
    metrics = json.loads((directory / "metrics.json").read_text())
    keys = {"hr@10", "ndcg@10", "auc", "recall@10", "full_ndcg@10", "coverage@10", "train_seconds"}
    assert all(set(metrics[model]) == keys for model in ("neumf", "mf", "toppop"))
    assert metrics["data"] == {"users": 60, "items": data.n_items, "interactions": len(data)}
    config = json.loads((directory / "config.json").read_text())
    assert config["served"] == {"weights": "refit on all interactions", "interactions": len(data),
                                "epochs": config["history"]["best_epoch"]}
    assert config["train"]["item_features"] is True and config["model"]["n_attribute_values"] == 4 + 7
    assert config["model"]["attribute_shares"] is True  # on by default for the event store
    assert (config["train"]["recent_items"], config["train"]["recent_decay"]) == (4, 0.5)
    assert config["item_features"] == {"fields": ["category", "sub_category", "brand"], "values": 11,
                                       "items_with_values": data.n_items}
    served, evaluated = (torch.load(directory / name) for name in ("model.pt", "evaluation_model.pt"))
    assert not torch.equal(served["gmf_user.weight"], evaluated["gmf_user.weight"])
    assert main([*train, "--no-refit"]) == 0
    unrefit = latest_model_dir(out)
    assert unrefit != directory and not (unrefit / "evaluation_model.pt").exists()
    assert json.loads((unrefit / "config.json").read_text())["served"]["weights"] == "evaluation run"
    neumf = scores_of(metrics["neumf"])
    assert scores_of(json.loads((unrefit / "metrics.json").read_text())["neumf"]) == neumf  # the same evaluation run
    with store.write_transaction() as connection:  # events after training do not change its split
        store.add(connection, [Event("late", "newcomer", "i1", "view", None, 2e9)], {})
    store.engine.dispose()
    for model_dir in (directory, unrefit):  # metrics.json measures the evaluation weights, reproducibly
        assert evaluate_model(model_dir, Settings.from_env({}), url)["neumf"] == neumf


def test_training_survives_an_unreadable_products_collection(tmp_path, monkeypatch, capsys):
    data = planted_clusters(n_users=30, n_items=120, clusters=8, per_user=10, seed=6)
    out = tmp_path / "models"
    url = f"sqlite:///{tmp_path / 'events.db'}"
    stored_events(url, data, "view")

    def unreachable(settings):
        raise StoreUnavailable("Milvus unreachable: connection refused")

    monkeypatch.setattr("app.core.training_data.product_attributes", unreachable)
    assert main(["train", "--database-url", url, *COMMON, "--out", str(out)]) == 0
    events = json.loads((latest_model_dir(out) / "config.json").read_text())
    assert events["train"]["item_features"] is True and events["item_features"] is None  # trained on ids only
    assert events["source"]["item_features_unavailable"] == (
        "the products collection could not be read: Milvus unreachable: connection refused")
    assert "NeuMF gets no item features" in capsys.readouterr().err
