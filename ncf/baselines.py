"""Baselines with NeuMF's interface (`fit(interactions, config)`, `score(users, items)`): TopPop and MF."""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from .data import Interactions
from .train import History, TrainConfig, seed_everything, split_data, train_model


class TopPop:
    """Scores an item by its number of training interactions, the same for every user."""

    def fit(self, interactions: Interactions, config: TrainConfig = TrainConfig()) -> "TopPop":
        started = time.perf_counter()
        train = split_data(interactions, config).train
        self.popularity = np.bincount(train.items, minlength=train.n_items).astype(np.float32)
        self.train_seconds = time.perf_counter() - started
        return self

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.popularity[np.asarray(items)]


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


class MatrixFactorization:
    """Dot-product MF trained like NeuMF (sampled negatives, BCE, early stopping) with its own config."""

    def fit(self, interactions: Interactions, config: TrainConfig = MF_CONFIG) -> "MatrixFactorization":
        seed_everything(config.seed)
        self.model = DotProductMF(interactions.n_users, interactions.n_items, config.embed_dim, config.init_std)
        self.history: History = train_model(self.model, split_data(interactions, config), config)
        self.train_seconds = self.history.train_seconds
        return self

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.model.score(users, items)
