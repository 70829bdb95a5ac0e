"""NCFRecommender: a trained NeuMF with its id mappings, served by external ids; saved as a model directory.

model.pt holds the served weights: by default NeuMF refit on every interaction. evaluation_model.pt (only
when they differ) holds the evaluation run's weights, which metrics.json measures. item_features.json (only
for a model with item features) holds the item → attribute-value table both use. item_knn.npz holds the
item-to-item neighbours of the same interactions (directories written before it have none). blender.json
holds the learned blend of recommendation candidates (ncf/blender.py), fitted with the model.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .base import Recommender
from .data import Interactions
from .blender import Blender, fit_blender
from .item_knn import ItemKNN
from .mappings import IdMapping, ItemFeatures, load_mappings, save_mappings
from .model import NeuMF
from .scoring import ScoringTables
from .train import History, TrainConfig, fit, refit, split_data, use_threads

WEIGHTS_FILE, MAPPINGS_FILE, CONFIG_FILE, METRICS_FILE = "model.pt", "mappings.json", "config.json", "metrics.json"
EVALUATION_WEIGHTS_FILE, ITEM_FEATURES_FILE = "evaluation_model.pt", "item_features.json"
MODEL_FILES = (WEIGHTS_FILE, MAPPINGS_FILE, CONFIG_FILE, METRICS_FILE)
MODEL_DIR_PATTERN = re.compile(r"^ncf-(\d{8}T\d{6}Z)-[0-9a-f]+$")


class NCFRecommender(Recommender):
    """A trained NeuMF with its id mappings (and item-to-item neighbours), under the models' contract."""

    def __init__(self, config: TrainConfig = TrainConfig()):
        self.config = config
        self.model: NeuMF | None = None  # served
        self.evaluation_model: NeuMF | None = None  # trained without each user's two latest interactions
        self.user_ids = IdMapping([])
        self.item_ids = IdMapping([])
        self.item_features: ItemFeatures | None = None  # each item's attribute values, aligned with item_ids
        self.item_knn: ItemKNN | None = None  # item-to-item neighbours of the served model's interactions
        self.blender: Blender | None = None  # the learned blend of recommendation candidates
        self.history = History()  # of the evaluation run
        self.refit_history: History | None = None  # of the served model, when refit on every interaction
        self.metrics: dict = {}
        self.source: dict = {}  # where the training data came from, to rebuild the split
        self._tables: tuple[NeuMF, ScoringTables] | None = None

    @property
    def tables(self) -> ScoringTables:
        """The served model's item-side tables, computed on first use (again if the model was replaced)."""
        tables = self._tables
        if tables is None or tables[0] is not self.model:
            tables = self._tables = (self.model, ScoringTables(self.model))
        return tables[1]

    def fit(self, interactions: Interactions, item_features: ItemFeatures | None = None) -> "NCFRecommender":
        """The evaluation run, then (`config.refit`) the served model retrained on every interaction.

        `item_features` (aligned with `interactions.item_ids`): the items' attributes, for both models.
        """
        self.evaluation_model, self.history = fit(interactions, self.config, item_features)
        self.model, self.refit_history = (refit(interactions, self.config, self.history, item_features)
                                          if self.config.refit else (self.evaluation_model, None))
        self.user_ids, self.item_ids, self.item_features = interactions.user_ids, interactions.item_ids, item_features
        self.item_knn = ItemKNN().fit(interactions)
        if self.config.blender:
            self.fit_blender(interactions)
        return self

    def fit_blender(self, interactions: Interactions) -> Blender | None:
        """The learned blend, on the evaluation run's split of `interactions` (the ones the model was fit on)."""
        use_threads(self.config)
        self.blender = fit_blender(ScoringTables(self.evaluation_model), split_data(interactions, self.config),
                                   np.bincount(interactions.items, minlength=interactions.n_items),
                                   recent_items=self.config.recent_items, decay=self.config.recent_decay)
        return self.blender

    @property
    def served(self) -> dict:
        """Which weights model.pt holds, trained on how many interactions for how many epochs."""
        refitted = self.refit_history is not None
        history = self.refit_history if refitted else self.history
        return {"weights": "refit on all interactions" if refitted else "evaluation run",
                "interactions": history.interactions, "epochs": history.best_epoch}

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The served NeuMF's logits of (user, item) index pairs: one user's pairs from the precomputed item
        tables, mixed users by a forward pass."""
        users = np.asarray(users)
        if len(users) and (users == users[0]).all():
            return self.tables.score(int(users[0]), np.asarray(items))
        return self.model.score(users, items)

    def user_scores(self, user: int) -> np.ndarray:
        return self.tables.score(user)

    def retrieve(self, user_id: str, k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The k best by the GMF part of the logit plus the biases (what the ANN index ranks by), computed
        exactly over the whole catalogue; [] for an unknown user."""
        user = self.user_ids.index(user_id)
        return [] if user is None else self.top(self.tables.gmf_scores(user), k, exclude)

    def gmf_user(self, user_id: str) -> np.ndarray | None:
        """The user's query vector for the ANN index (None: unknown user)."""
        user = self.user_ids.index(user_id)
        return None if user is None else self.tables.gmf_user(user)

    def save(self, directory: str | Path) -> Path:
        """Write model.pt, mappings.json, config.json, metrics.json (and evaluation_model.pt, item_features.json)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / WEIGHTS_FILE)
        if self.refit_history is not None:
            torch.save(self.evaluation_model.state_dict(), directory / EVALUATION_WEIGHTS_FILE)
        save_mappings(directory / MAPPINGS_FILE, self.user_ids, self.item_ids)
        if self.item_features is not None:
            self.item_features.save(directory / ITEM_FEATURES_FILE)
        if self.item_knn is not None:
            self.item_knn.save(directory)
        if self.blender is not None:
            self.blender.save(directory)
        config = {"train": self.config.to_dict(), "model": self.model.hyperparameters(), "source": self.source,
                  "item_features": None if self.item_features is None else self.item_features.summary(),
                  "served": self.served, "history": self.history.to_dict(),
                  "refit_history": None if self.refit_history is None else self.refit_history.to_dict()}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        (directory / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, evaluation: bool = False) -> "NCFRecommender":
        """The served model; `evaluation`: also the evaluation run's (to re-score it; serving does not need it)."""
        directory = Path(directory)
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        recommender = cls(TrainConfig.from_dict(config["train"]))
        if config["model"].get("n_attribute_values"):
            recommender.item_features = ItemFeatures.load(directory / ITEM_FEATURES_FILE)
        recommender.model = _load_neumf(config["model"], directory / WEIGHTS_FILE, recommender.item_features)
        recommender.user_ids, recommender.item_ids = load_mappings(directory / MAPPINGS_FILE)
        if (directory / ItemKNN.SIMILARITIES_FILE).is_file():
            recommender.item_knn = ItemKNN.load(directory)
        recommender.blender = Blender.load(directory)
        recommender.history = History(**config["history"])
        if config.get("refit_history"):
            recommender.refit_history = History(**config["refit_history"])
        if evaluation:
            recommender.evaluation_model = (
                _load_neumf(config["model"], directory / EVALUATION_WEIGHTS_FILE, recommender.item_features)
                if recommender.refit_history is not None else recommender.model)
        recommender.source = config["source"]
        recommender.metrics = json.loads((directory / METRICS_FILE).read_text(encoding="utf-8"))
        return recommender


def _load_neumf(hyperparameters: dict, weights: Path, item_features: ItemFeatures | None) -> NeuMF:
    # directories written before NeuMF had an item bias or attribute shares do not name them
    hyperparameters = {"item_bias": False, "attribute_shares": False, **hyperparameters}
    shares = hyperparameters.pop("attribute_shares")
    model = NeuMF(**hyperparameters, item_attributes=None if item_features is None else item_features.items,
                  value_fields=item_features.value_fields() if shares else None)
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


def latest_model_dir(root: str | Path) -> Path | None:
    """The newest complete model directory `ncf-<UTC time>-<hash>` under `root` (None if there is none).

    Directories being written have another name until they are complete (see ncf/run.py).
    """
    root = Path(root)
    if not root.is_dir():
        return None
    complete = [path for path in root.iterdir()
                if path.is_dir() and MODEL_DIR_PATTERN.match(path.name)
                and all((path / name).is_file() for name in MODEL_FILES)]
    if not complete:
        return None
    return max(complete, key=lambda path: (MODEL_DIR_PATTERN.match(path.name).group(1), path.stat().st_mtime_ns))
