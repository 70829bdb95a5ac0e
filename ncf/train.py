"""Training with sampled negatives and a weighted BCE loss, early-stopped on validation NDCG@10.

`fit` is the evaluation run (each user's two latest interactions held out); `refit` retrains on every
interaction for the evaluation run's best number of epochs, for serving.
"""
from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import Interactions, Split, leave_one_out, sample_training_negatives
from .evaluate import sampled_metrics
from .mappings import ItemFeatures
from .model import NeuMF

LR_SCHEDULES = ("plateau", "cosine", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run, and of the split it is validated and tested on."""

    epochs: int = 30
    batch_size: int = 4096
    lr: float = 1e-3  # NeuMF: best mean validation NDCG@10 on MovieLens (2e-3: 0.4926, 1e-3: 0.4973, 3 seeds)
    embed_dim: int = 64
    layers: tuple[int, ...] = (128, 64, 32)
    init_std: float = 0.01  # of the embeddings
    negatives: int = 8  # sampled per positive, anew each epoch (the paper: 4; 8 measured better here)
    l2: float = 1e-4  # on the embedding rows of each batch (item rows with their attributes), per example
    lr_schedule: str = "plateau"  # plateau: halve the lr after an epoch without a better validation NDCG@10
    patience: int = 3  # epochs without a better validation NDCG@10 before stopping
    min_delta: float = 1e-3  # smaller NDCG@10 gains are noise (1 SE ~0.02 on 610 users): not a better epoch
    seed: int = 0
    eval_negatives: int = 99
    split_seed: int = 0  # seeds the evaluation negatives; fixed across training seeds
    threads: int | None = None  # torch threads; None: $OMP_NUM_THREADS, else every core this process may use
    device: str = "cpu"  # torch device trained on (the service's trainer: TRAINING_DEVICE); models end on the CPU
    progress: bool = True
    refit: bool = True  # serve weights retrained on every interaction (`refit`), not the evaluation run's
    item_features: bool = True  # a training run gives NeuMF the source's item attributes (see ItemFeatures)
    attribute_shares: bool = True  # with item features: the user's shares of the item's values (see NeuMF)
    blender: bool = True  # fit the learned blend of recommendation candidates with the model (ncf/blender.py)
    # the item source's recent items and recency decay the blender learns with (the service's own settings)
    recent_items: int = 10
    recent_decay: float = 0.7

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        object.__setattr__(self, "layers", tuple(int(size) for size in self.layers))

    def to_dict(self) -> dict:
        return {**asdict(self), "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in names})


@dataclass
class History:
    """Per-epoch records (epoch, loss, lr, val_hr@10, val_ndcg@10, val_auc, seconds), the best (kept) epoch."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    train_seconds: float = 0.0
    interactions: int = 0  # training rows

    def to_dict(self) -> dict:
        return asdict(self)


def split_data(interactions: Interactions, config: TrainConfig) -> Split:
    """The leave-one-out split every model of a run is trained, validated and tested on."""
    return leave_one_out(interactions, config.eval_negatives, config.split_seed)


def fit(interactions: Interactions, config: TrainConfig = TrainConfig(),
        item_features: ItemFeatures | None = None) -> tuple[NeuMF, History]:
    """Train NeuMF on the training part of `split_data(interactions, config)`; best validation weights.

    With `item_features` (aligned with `interactions.item_ids`), item vectors add their attributes' embeddings.
    """
    split = split_data(interactions, config)
    model = new_neumf(interactions, config, item_features, split.train)
    history = train_model(model, split, config)
    return model, history


def refit(interactions: Interactions, config: TrainConfig, evaluation: History,
          item_features: ItemFeatures | None = None) -> tuple[NeuMF, History]:
    """NeuMF trained on every interaction for the evaluation run's best epoch count, at that run's learning rates.

    Same seed, hence the same initial weights as `fit`; no validation, no early stopping.
    """
    model = new_neumf(interactions, config, item_features, interactions)
    learning_rates = [record["lr"] for record in evaluation.epochs[:evaluation.best_epoch]]
    return model, train_on_schedule(model, interactions, learning_rates, config)


def new_neumf(interactions: Interactions, config: TrainConfig, item_features: ItemFeatures | None,
              history: Interactions) -> NeuMF:
    """NeuMF for these users and items, initialised from `config.seed`; its attribute shares count `history`."""
    seed_everything(config.seed)
    attributes = {} if item_features is None else {
        "n_attribute_values": len(item_features.values), "item_attributes": item_features.items,
        "value_fields": item_features.value_fields() if config.attribute_shares else None}
    model = NeuMF(interactions.n_users, interactions.n_items, config.embed_dim, config.layers, config.init_std,
                  **attributes)
    model.set_history(history.users, history.items)
    return model


def use_threads(config: TrainConfig) -> None:
    """torch threads: `config.threads`, else $OMP_NUM_THREADS, else every core this process may use."""
    torch.set_num_threads(config.threads or int(os.environ.get("OMP_NUM_THREADS") or 0)
                          or len(os.sched_getaffinity(0)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_model(model: nn.Module, split: Split, config: TrainConfig) -> History:
    """Adam on sampled-negative BCE; per-epoch validation; early stopping restoring the best weights.

    `model.logits_and_embeddings(users, items)` returns the logits and the embedding rows L2 applies to,
    `model.score(users, items)` numpy scores. Positives weigh their confidence (normalised to mean 1),
    negatives 1.
    """
    trainer = _EpochTrainer(model, split.train, config)
    scheduler = _scheduler(trainer.optimizer, config)
    history, best_ndcg, best_state, stale = History(interactions=len(split.train)), -float("inf"), None, 0
    started = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=type(model).__name__, unit="epoch", disable=not config.progress)
    for epoch in bar:
        epoch_started = time.perf_counter()
        lr = trainer.optimizer.param_groups[0]["lr"]
        loss = trainer.run_epoch()
        validation = sampled_metrics(model, split.validation) if len(split.validation) else {}
        ndcg = validation.get("ndcg@10", -loss)  # without validation users: lowest loss wins
        record = {"epoch": epoch, "loss": loss, "lr": lr,
                  **{f"val_{name}": value for name, value in validation.items()},
                  "seconds": time.perf_counter() - epoch_started}
        history.epochs.append(record)
        bar.set_postfix(loss=f"{loss:.4f}", ndcg=f"{ndcg:.4f}", lr=f"{lr:.1e}")
        if ndcg > best_ndcg + config.min_delta:
            best_ndcg, best_state, stale, history.best_epoch = ndcg, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            stale += 1
        if scheduler is not None:
            scheduler.step(ndcg) if config.lr_schedule == "plateau" else scheduler.step()
        if stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval().cpu()
    history.train_seconds = time.perf_counter() - started
    return history


def train_on_schedule(model: nn.Module, interactions: Interactions, learning_rates: list[float],
                      config: TrainConfig) -> History:
    """One epoch per learning rate on every row of `interactions`, as `train_model` trains; keeps the last weights."""
    trainer = _EpochTrainer(model, interactions, config)
    history = History(best_epoch=len(learning_rates), interactions=len(interactions))
    started = time.perf_counter()
    bar = tqdm(learning_rates, desc=f"{type(model).__name__} refit", unit="epoch", disable=not config.progress)
    for epoch, lr in enumerate(bar, start=1):
        epoch_started = time.perf_counter()
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        loss = trainer.run_epoch()
        history.epochs.append({"epoch": epoch, "loss": loss, "lr": lr, "seconds": time.perf_counter() - epoch_started})
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.1e}")
    model.eval().cpu()
    history.train_seconds = time.perf_counter() - started
    return history


class _EpochTrainer:
    """Adam over the positives of `train` plus fresh sampled negatives each epoch, in shuffled mini-batches."""

    def __init__(self, model: nn.Module, train: Interactions, config: TrainConfig):
        use_threads(config)
        seed_everything(config.seed)
        self.model, self.config, self.n_items = model.to(config.device), config, train.n_items
        self.rng = np.random.default_rng(config.seed)
        counts = np.bincount(train.users, minlength=train.n_users)
        trainable = counts[train.users] < train.n_items  # a user who touched every item has no negatives
        self.users, self.items = train.users[trainable], train.items[trainable]
        self.weights = (train.weights[trainable] / train.weights[trainable].mean()).astype(np.float32)
        self.positive_keys = train.pair_keys()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)  # CPU: epochs 20-35% faster

    def run_epoch(self) -> float:
        """One pass; the mean training loss."""
        config = self.config
        users, items, labels, weights = (tensor.to(config.device) for tensor in _epoch_samples(
            self.users, self.items, self.weights, self.positive_keys, self.n_items, config.negatives, self.rng))
        self.model.train()
        total_loss = 0.0
        for start in range(0, len(users), config.batch_size):
            batch = slice(start, start + config.batch_size)
            logits, rows = self.model.logits_and_embeddings(users[batch], items[batch])
            loss = F.binary_cross_entropy_with_logits(logits, labels[batch], weight=weights[batch])
            if config.l2:
                loss = loss + config.l2 * sum(row.pow(2).sum() for row in rows) / len(logits)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total_loss += float(loss.detach()) * len(logits)
        return total_loss / len(users)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=0)
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return None


def _epoch_samples(users: np.ndarray, items: np.ndarray, weights: np.ndarray, positive_keys: np.ndarray,
                   n_items: int, negatives: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """Positives plus `negatives` fresh negatives per positive, shuffled, as tensors."""
    negative_users = np.repeat(users, negatives)
    negative_items = sample_training_negatives(negative_users, positive_keys, n_items, rng)
    all_users = np.concatenate((users, negative_users))
    all_items = np.concatenate((items, negative_items))
    labels = np.concatenate((np.ones(len(users), np.float32), np.zeros(len(negative_users), np.float32)))
    all_weights = np.concatenate((weights, np.ones(len(negative_users), np.float32)))
    order = rng.permutation(len(all_users))
    return (torch.from_numpy(all_users[order]), torch.from_numpy(all_items[order]),
            torch.from_numpy(labels[order]), torch.from_numpy(all_weights[order]))
