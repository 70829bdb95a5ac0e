"""What made a collection's dense vectors (model, backend, precision), recorded on the products collection and
checked when a process opens it."""
from __future__ import annotations

import json
import logging

from app.config.settings import Settings

log = logging.getLogger(__name__)


def vector_space(settings: Settings) -> dict[str, str]:
    """What the dense vectors of these settings are made by, as recorded on the products collection."""
    backend = "flagembedding" if settings.sparse_mode == "bge-m3" else settings.embedding_backend
    quantized = backend == "onnx" and settings.embedding_quantize
    return {"model": settings.embedding_model, "backend": backend, "precision": "int8" if quantized else "fp32"}


def check_vector_space(recorded: str, settings: Settings, collection: str) -> None:
    """Refuse a store whose vectors another model made; warn when they were made at another precision (int8
    vectors are within cosine 0.99 of fp32 ones since the smoothed int8 export, decisions/0011, but were 0.97
    before it, and the record does not tell the two int8 exports apart). fp32 backends (torch, onnx, openvino)
    agree to cosine ≥ 0.99 and mix freely. A store seeded before this was recorded (empty `recorded`) is
    trusted."""
    if not recorded:
        return
    try:
        stored = json.loads(recorded)
    except ValueError:
        return
    current = vector_space(settings)
    if stored.get("model") != current["model"]:
        raise RuntimeError(
            f"collection {collection!r} was seeded with EMBEDDING_MODEL={stored.get('model')!r}, not "
            f"{current['model']!r}: its vectors are in another space. Use that model, another "
            "PRODUCTS_COLLECTION, or re-seed"
        )
    if stored.get("precision") != current["precision"]:
        log.warning("collection %r was seeded with %s vectors (%s), queried with %s ones (%s): results drift; "
                    "re-seed or set EMBEDDING_QUANTIZE as when seeding", collection, stored.get("precision"),
                    stored.get("backend"), current["precision"], current["backend"])
