"""Baselines under the models' contract (ncf/base.py): TopPop and dot-product MF."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Recommender
from .data import Interactions
from .mappings import load_mappings, save_mappings
from .train import History, TrainConfig, seed_everything, split_data, train_model

MAPPINGS_FILE, CONFIG_FILE = "mappings.json", "config.json"


class TopPop(Recommender):
    """Scores an item by its number of interactions, the same for every user. Fit on the interactions given
    (the training part of a split, to be evaluated on it)."""

    POPULARITY_FILE = "popularity.npy"

    def fit(self, interactions: Interactions) -> "TopPop":
        started = time.perf_counter()
        self.user_ids, self.item_ids = interactions.user_ids, interactions.item_ids
        self.popularity = np.bincount(interactions.items, minlength=interactions.n_items).astype(np.float32)
        self.train_seconds = time.perf_counter() - started
        return self

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.popularity[np.asarray(items)]

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / self.POPULARITY_FILE, self.popularity)
        save_mappings(directory / MAPPINGS_FILE, self.user_ids, self.item_ids)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "TopPop":
        model = cls()
        model.user_ids, model.item_ids = load_mappings(Path(directory) / MAPPINGS_FILE)
        model.popularity = np.load(Path(directory) / cls.POPULARITY_FILE)
        return model


class DotProductMF(nn.Module):
    """Logit = <p_u, q_i> + b_u + b_i + b (Rendle et al. 2020, "NCF vs. MF Revisited")."""

    def __init__(self, n_users: int, n_items: int, embed_dim: int, init_std: float):
        super().__init__()
        self.user = nn.Embedding(n_users, embed_dim)
        self.item = nn.Embedding(n_items, embed_dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.bias = nn.Parameter(torch.zeros(()))
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embeddings(users, items)[0]

    def logits_and_embeddings(self, users: torch.Tensor, items: torch.Tensor
                              ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        user, item = self.user(users), self.item(items)
        biases = self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + self.bias
        logits = (user * item).sum(-1) + biases
        return logits, [user, item]

    @torch.no_grad()
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        self.eval()
        return self(torch.as_tensor(np.asarray(users), dtype=torch.long),
                    torch.as_tensor(np.asarray(items), dtype=torch.long)).numpy()


MF_CONFIG = TrainConfig(epochs=50, lr=2e-3, l2=1e-4)  # tuned on MovieLens latest-small validation NDCG@10


class MatrixFactorization(Recommender):
    """Dot-product MF trained like NeuMF (sampled negatives, BCE, early stopping on the split's validation
    users) with its own config."""

    WEIGHTS_FILE = "mf.pt"

    def __init__(self, config: TrainConfig = MF_CONFIG):
        self.config = config

    def fit(self, interactions: Interactions) -> "MatrixFactorization":
        config = self.config
        seed_everything(config.seed)
        self.user_ids, self.item_ids = interactions.user_ids, interactions.item_ids
        self.model = DotProductMF(interactions.n_users, interactions.n_items, config.embed_dim, config.init_std)
        self.history: History = train_model(self.model, split_data(interactions, config), config)
        self.train_seconds = self.history.train_seconds
        return self

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.model.score(users, items)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / self.WEIGHTS_FILE)
        save_mappings(directory / MAPPINGS_FILE, self.user_ids, self.item_ids)
        (directory / CONFIG_FILE).write_text(json.dumps({"train": self.config.to_dict()}), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "MatrixFactorization":
        directory = Path(directory)
        model = cls(TrainConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))["train"]))
        model.user_ids, model.item_ids = load_mappings(directory / MAPPINGS_FILE)
        model.model = DotProductMF(len(model.user_ids), len(model.item_ids), model.config.embed_dim, 0.0)
        model.model.load_state_dict(torch.load(directory / cls.WEIGHTS_FILE, weights_only=True))
        return model
