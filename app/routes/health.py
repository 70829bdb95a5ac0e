"""Liveness and status of the service."""
from __future__ import annotations

import logging

from flask import Blueprint

from ..resources import resources

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/health")
def health():
    """200 when Milvus answers, 503 naming the failing dependency otherwise."""
    try:
        resources().client.list_collections()
    except Exception as exc:  # any failure of the store means degraded
        log.warning("health check: milvus unreachable: %s", type(exc).__name__)
        return {"status": "degraded", "failing": ["milvus"]}, 503
    return {"status": "ok"}


@bp.get("/status")
def status():
    res = resources()
    settings = res.settings
    return {
        "collections": {settings.products_collection: res.products.count(), settings.users_collection: res.users.count()},
        "events": res.events.count_events(),
        "database": {"url": settings.public_database_url},
        "model": {"name": settings.embedding_model, "dimension": res.encoder.dimension},
        "sparse_mode": settings.sparse_mode,
        "index_type": settings.index_type,
        "store": {"uri": settings.public_milvus_uri},
    }
