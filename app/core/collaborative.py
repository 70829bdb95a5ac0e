"""The collaborative part of recommendations: the newest NCF model under MODELS_DIR, hot-swapped.

A model directory holds everything collaborative (NeuMF weights, id mappings, item-to-item neighbours), and
a request takes one (version, model) pair with `current()`: it never mixes two models' parts. A newer complete model directory (written by `python -m app.ops.cli train`) replaces the served one without a
restart; the directory is looked at most every MODEL_CHECK_SECONDS. A model that fails to load is
logged and the previous one keeps serving. With a CollaborativeIndex, the new model's GMF item vectors are
written to its own Milvus collection before it is served (app/storage/collaborative_index.py).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from app.core.model_metrics import record_served_model

if TYPE_CHECKING:
    from app.storage.collaborative_index import CollaborativeIndex
    from ncf.recommender import NCFRecommender

log = logging.getLogger(__name__)


class ServedModel:
    """Scores (user, candidate products) with the newest NCF model; None when no model knows the user."""

    def __init__(self, root: Path, check_seconds: float, index: CollaborativeIndex | None = None):
        self.root = Path(root)
        self.check_seconds = check_seconds
        self.index = index  # where each model's GMF item vectors are published for ANN retrieval
        self._lock = threading.Lock()
        self._served: tuple[str, NCFRecommender] | None = None  # replaced as one reference
        self._directory: Path | None = None
        self._checked_at = float("-inf")

    @property
    def version(self) -> str | None:
        """The served model directory's name (None: no model yet)."""
        served = self.current()
        return served[0] if served else None

    def current(self) -> tuple[str, "NCFRecommender"] | None:
        """The served (version, model), taken together (None: no model yet)."""
        self._refresh()
        return self._served

    def score_ids(self, user_id: str, product_ids: Sequence[str]) -> np.ndarray | None:
        """One batched forward pass over the candidates; NaN for products the model has never seen."""
        served = self.current()
        return None if served is None else served[1].score_ids(user_id, list(product_ids))

    def _refresh(self) -> None:
        if time.monotonic() - self._checked_at < self.check_seconds:
            return
        with self._lock:
            if time.monotonic() - self._checked_at < self.check_seconds:
                return
            self._checked_at = time.monotonic()
            from ncf.recommender import NCFRecommender, latest_model_dir

            newest = latest_model_dir(self.root)
            if newest is None or newest == self._directory:
                return
            try:
                model = NCFRecommender.load(newest)
            except Exception:
                log.exception("could not load model %s; still serving %s", newest, self._directory)
                return
            self._publish(newest.name, model)
            replaced, self._served, self._directory = self._directory, (newest.name, model), newest
            record_served_model("ncf", newest.name, replaced.name if replaced else None)
            log.info("serving NCF model %s", newest.name)
            self._retire([newest.name] + ([replaced.name] if replaced else []))

    def _publish(self, version: str, model: "NCFRecommender") -> None:
        """The model's item vectors into its collection (failing that, requests score them in process)."""
        if self.index is None:
            return
        try:
            self.index.publish(version, model.item_ids.ids, model.tables.gmf_items())
        except Exception:
            log.exception("could not publish the item vectors of %s: collaborative retrieval is exact", version)

    def _retire(self, keep: list[str]) -> None:
        if self.index is None:
            return
        try:
            self.index.retire(keep)
        except Exception:
            log.exception("could not drop the item vectors of older models")
