"""The collaborative part of recommendations: the newest NCF model under MODELS_DIR, hot-swapped.

A newer complete model directory (written by `python -m ncf train`) replaces the served one without a
restart; the directory is looked at most every MODEL_CHECK_SECONDS. A model that fails to load is
logged and the previous one keeps serving.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .metrics import record_served_model

log = logging.getLogger(__name__)


class ServedModel:
    """Scores (user, candidate products) with the newest NCF model; None when no model knows the user."""

    def __init__(self, root: Path, check_seconds: float):
        self.root = Path(root)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._model = None
        self._directory: Path | None = None
        self._checked_at = float("-inf")

    @property
    def version(self) -> str | None:
        """The served model directory's name (None: no model yet)."""
        self._refresh()
        return self._directory.name if self._directory else None

    def score(self, user_id: str, product_ids: Sequence[str]) -> np.ndarray | None:
        """One batched forward pass over the candidates; NaN for products the model has never seen."""
        self._refresh()
        model = self._model
        return None if model is None else model.score(user_id, list(product_ids))

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
            replaced, self._model, self._directory = self._directory, model, newest
            record_served_model("ncf", newest.name, replaced.name if replaced else None)
            log.info("serving NCF model %s", newest.name)
