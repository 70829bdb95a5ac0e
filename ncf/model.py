"""NeuMF (He et al. 2017): a GMF branch and an MLP branch fused by one linear output layer."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn


class NeuMF(nn.Module):
    """Outputs a logit per (user, item): higher means more likely to interact.

    GMF: the element-wise product of user and item embeddings. MLP: separate embeddings, concatenated
    and passed through `layers` (ReLU). The output layer sees both branches' last vectors.
    """

    def __init__(self, n_users: int, n_items: int, embed_dim: int = 64, layers: Sequence[int] = (128, 64, 32),
                 init_std: float = 0.01):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.embed_dim, self.layers, self.init_std = embed_dim, tuple(layers), init_std
        self.gmf_user = nn.Embedding(n_users, embed_dim)
        self.gmf_item = nn.Embedding(n_items, embed_dim)
        self.mlp_user = nn.Embedding(n_users, embed_dim)
        self.mlp_item = nn.Embedding(n_items, embed_dim)
        blocks: list[nn.Module] = []
        width = 2 * embed_dim
        for size in self.layers:
            blocks += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.mlp = nn.Sequential(*blocks)
        self.output = nn.Linear(embed_dim + width, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings N(0, init_std²) (the paper: 0.01); Xavier-uniform linear weights, zero biases."""
        for embedding in self.embeddings():
            nn.init.normal_(embedding.weight, std=self.init_std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def embeddings(self) -> list[nn.Embedding]:
        return [self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = self.mlp(torch.cat((self.mlp_user(users), self.mlp_item(items)), dim=-1))
        return self.output(torch.cat((gmf, mlp), dim=-1)).squeeze(-1)

    def batch_embeddings(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """The embedding rows a batch uses (for per-example L2 regularisation)."""
        return [self.gmf_user(users), self.gmf_item(items), self.mlp_user(users), self.mlp_item(items)]

    @torch.no_grad()
    def score(self, users: np.ndarray, items: np.ndarray, batch_size: int = 1 << 16) -> np.ndarray:
        """Logits for index pairs, as float32 numpy (evaluation mode, no gradients)."""
        was_training = self.training
        self.eval()
        users_t = torch.as_tensor(np.asarray(users), dtype=torch.long)
        items_t = torch.as_tensor(np.asarray(items), dtype=torch.long)
        scores = torch.cat([self(users_t[start:start + batch_size], items_t[start:start + batch_size])
                            for start in range(0, len(users_t), batch_size)]) if len(users_t) else torch.empty(0)
        self.train(was_training)
        return scores.numpy()

    def hyperparameters(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items, "embed_dim": self.embed_dim,
                "layers": list(self.layers), "init_std": self.init_std}
