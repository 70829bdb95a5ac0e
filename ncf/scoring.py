"""NeuMF scoring for serving: the item side precomputed once per model load, a request computes the user side.

The logit of (u, i) is h_g · (p_u ⊙ q_i) + h_m · MLP(W1 [m_u; m_i] + b1) + b_i + b. Everything that depends
on the item alone is kept per item: the GMF item vector h_g ⊙ q_i (attribute embeddings included), the first
MLP layer's item half W1_i m_i + b1, and the bias b_i + b. Scoring the whole catalogue is then one
matrix-vector product for GMF and the MLP's later layers over (n_items, width) arrays, instead of the
embedding look-ups and concatenations of a forward pass. `gmf_items` / `gmf_user` are the two towers whose
inner product is the GMF part plus the item bias: what the collaborative ANN index holds and searches with.
"""
from __future__ import annotations

import numpy as np
import torch

from .model import SHARE_SCALE, NeuMF


class ScoringTables:
    """A served NeuMF's item-side tables (float32 tensors; read-only after construction)."""

    def __init__(self, model: NeuMF):
        self.model = model
        with torch.no_grad():
            items = torch.arange(model.n_items)
            gmf_item, mlp_item = model.gmf_item.weight, model.mlp_item.weight
            if model.n_attribute_values:
                bags = model.item_attributes[items]
                gmf_item, mlp_item = gmf_item + model.gmf_attribute(bags), mlp_item + model.mlp_attribute(bags)
            first = model.mlp[0]
            self.user_first = first.weight[:, :model.embed_dim].contiguous()  # W1_u
            self.item_first = (mlp_item @ first.weight[:, model.embed_dim:].T + first.bias).contiguous()
            self.rest = model.mlp[1:]  # ReLU, then the later layers
            self.gmf_output = model.output.weight[0, :model.embed_dim]
            self.mlp_output = model.output.weight[0, model.embed_dim:]
            self.gmf_item = (gmf_item * self.gmf_output).contiguous()  # h_g ⊙ q_i
            bias = model.output.bias.expand(model.n_items)
            self.bias = (bias + model.item_bias if model.item_bias is not None else bias).contiguous()

    @torch.no_grad()
    def score(self, user: int, items: np.ndarray | None = None) -> np.ndarray:
        """Logits of the user for the item indices (None: every item), as the model's forward pass gives them."""
        model = self.model
        index = None if items is None else torch.as_tensor(np.asarray(items), dtype=torch.long)
        pick = (lambda table: table) if index is None else (lambda table: table[index])
        gmf = pick(self.gmf_item) @ model.gmf_user.weight[user]
        hidden = self.rest(pick(self.item_first) + self.user_first @ model.mlp_user.weight[user])
        logits = gmf + hidden @ self.mlp_output + pick(self.bias)
        if model.attribute_shares is not None:
            all_items = torch.arange(model.n_items) if index is None else index
            users = torch.full((len(all_items),), user, dtype=torch.long)
            logits = logits + SHARE_SCALE * model.attribute_shares(users, all_items) @ model.share_weights
        return logits.numpy()

    @torch.no_grad()
    def gmf_scores(self, user: int) -> np.ndarray:
        """Every item's GMF part of the logit plus its biases (`gmf_items` · `gmf_user`)."""
        return (self.gmf_item @ self.model.gmf_user.weight[user] + self.bias).numpy()

    def gmf_items(self) -> np.ndarray:
        """(n_items, dim + 1): h_g ⊙ q_i and the item's bias; its inner product with `gmf_user` is the GMF
        part of the logit plus the biases."""
        with torch.no_grad():
            return torch.cat((self.gmf_item, self.bias[:, None]), dim=1).numpy()

    def gmf_user(self, user: int) -> np.ndarray:
        """(dim + 1,): p_u and 1."""
        with torch.no_grad():
            return torch.cat((self.model.gmf_user.weight[user], torch.ones(1))).numpy()
