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

    Item side features (the paper's §3.1: the item input is its one-hot id plus multi-hot attributes):
    with `item_attributes`, an (n_items, width) table of attribute value indices padded with -1, each
    branch's item vector is the item's id embedding plus the sum of its attribute values' embeddings. An
    item seen in few interactions is then scored mostly by what its attributes learnt from other items.

    `item_bias`: the logit adds a learnt per-item bias, as dot-product MF does (Rendle et al. 2020); it
    raised validation NDCG@10 on MovieLens and validation AUC on the mock interactions. Model directories
    written before it existed load without it.
    """

    def __init__(self, n_users: int, n_items: int, embed_dim: int = 64, layers: Sequence[int] = (128, 64, 32),
                 init_std: float = 0.01, n_attribute_values: int = 0, item_attributes: np.ndarray | None = None,
                 item_bias: bool = True):
        super().__init__()
        self.n_users, self.n_items, self.n_attribute_values = n_users, n_items, n_attribute_values
        self.item_bias = nn.Parameter(torch.empty(n_items)) if item_bias else None
        self.embed_dim, self.layers, self.init_std = embed_dim, tuple(layers), init_std
        self.gmf_user = nn.Embedding(n_users, embed_dim)
        self.gmf_item = nn.Embedding(n_items, embed_dim)
        self.mlp_user = nn.Embedding(n_users, embed_dim)
        self.mlp_item = nn.Embedding(n_items, embed_dim)
        if n_attribute_values:
            attributes = torch.as_tensor(np.asarray(item_attributes), dtype=torch.long).reshape(n_items, -1)
            # padding points at row n_attribute_values, which the bags leave out (an empty bag is zero)
            self.register_buffer("item_attributes", torch.where(attributes < 0, n_attribute_values, attributes),
                                 persistent=False)
            self.gmf_attribute = nn.EmbeddingBag(n_attribute_values + 1, embed_dim, mode="sum",
                                                 padding_idx=n_attribute_values)
            self.mlp_attribute = nn.EmbeddingBag(n_attribute_values + 1, embed_dim, mode="sum",
                                                 padding_idx=n_attribute_values)
        blocks: list[nn.Module] = []
        width = 2 * embed_dim
        for size in self.layers:
            blocks += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.mlp = nn.Sequential(*blocks)
        self.output = nn.Linear(embed_dim + width, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings N(0, init_std²) (the paper: 0.01); Xavier-uniform linear weights; zero biases (item bias too)."""
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias)
        for embedding in self.embeddings():
            nn.init.normal_(embedding.weight, std=self.init_std)
            if embedding.padding_idx is not None:
                nn.init.zeros_(embedding.weight[embedding.padding_idx])
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def embeddings(self) -> list[nn.Embedding | nn.EmbeddingBag]:
        tables = [self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item]
        return tables + [self.gmf_attribute, self.mlp_attribute] if self.n_attribute_values else tables

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embeddings(users, items)[0]

    def logits_and_embeddings(self, users: torch.Tensor, items: torch.Tensor
                              ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits of a batch and the GMF user and item, MLP user and item vectors they came from (L2
        regularisation applies to those)."""
        gmf_item, mlp_item = self.gmf_item(items), self.mlp_item(items)
        if self.n_attribute_values:
            bags = self.item_attributes[items]
            gmf_item, mlp_item = gmf_item + self.gmf_attribute(bags), mlp_item + self.mlp_attribute(bags)
        gmf_user, mlp_user = self.gmf_user(users), self.mlp_user(users)
        mlp = self.mlp(torch.cat((mlp_user, mlp_item), dim=-1))
        logits = self.output(torch.cat((gmf_user * gmf_item, mlp), dim=-1)).squeeze(-1)
        if self.item_bias is not None:
            logits = logits + self.item_bias[items]
        return logits, [gmf_user, gmf_item, mlp_user, mlp_item]

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
                "layers": list(self.layers), "init_std": self.init_std, "n_attribute_values": self.n_attribute_values,
                "item_bias": self.item_bias is not None}
