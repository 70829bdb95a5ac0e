"""Liveness and status of the service."""
from __future__ import annotations

import logging
from typing import Literal

from flask import Blueprint
from pydantic import Field

from ncf.devices import resolve_device
from app.api.requests import ResponseModel, operation
from app.core.resources import resources
from app.storage.training_jobs import ACTIVE
from app.storage.vector_space import vector_space

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


class Health(ResponseModel):
    status: Literal["ok", "degraded"]
    failing: list[Literal["milvus", "database"]] | None = None


class ModelInfo(ResponseModel):
    name: str
    dimension: int
    backend: str = Field(description="EMBEDDING_BACKEND: torch, onnx or openvino (SPARSE_MODE=bge-m3: flagembedding)")
    precision: Literal["fp32", "int8"]
    device: str = Field(description="where the encoder runs (EMBEDDING_DEVICE resolved)")


class Recommendations(ResponseModel):
    ncf_model: str | None = Field(description="the NCF model served (None: popular and content-based only)")
    training: bool = Field(description="an NCF model is being trained (its job: GET /train)")
    training_job: str | None = Field(None, description="the queued or running training job")


class StoreLocation(ResponseModel):
    uri: str


class DatabaseLocation(ResponseModel):
    url: str


class ServiceStatus(ResponseModel):
    collections: dict[str, int] = Field(description="row count per Milvus collection")
    events: int
    database: DatabaseLocation
    model: ModelInfo
    recommendations: Recommendations
    sparse_mode: str
    index_type: str
    store: StoreLocation


@bp.get("/health")
@operation({200: Health, 503: Health})
def health():
    """200 when Milvus and the database answer, 503 naming the failing dependencies otherwise."""
    res = resources()
    checks = {"milvus": lambda: res.client.list_collections(), "database": lambda: res.events.ping()}
    failing = []
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:  # any failure of a dependency means degraded
            log.warning("health check: %s unreachable: %s", name, type(exc).__name__)
            failing.append(name)
    if failing:
        return {"status": "degraded", "failing": failing}, 503
    return {"status": "ok"}


@bp.get("/status")
@operation({200: ServiceStatus})
def status():
    """Row counts, encoder, NCF model (and whether one is training), sparse mode, index type and store location
    (no secrets)."""
    res = resources()
    settings = res.settings
    active = next((job for job in res.training_jobs.latest(1) if job["status"] in ACTIVE), None)
    space = vector_space(settings)
    return {
        "collections": {settings.products_collection: res.products.count(), settings.users_collection: res.users.count()},
        "events": res.events.count_events(),
        "database": {"url": settings.public_database_url},
        "model": {"name": settings.embedding_model, "dimension": res.encoder.dimension, "backend": space["backend"],
                  "precision": space["precision"], "device": resolve_device(settings.embedding_device)},
        "recommendations": {"ncf_model": res.served_model.version, "training": active is not None,
                            "training_job": active and active["job_id"]},
        "sparse_mode": settings.sparse_mode,
        "index_type": res.products.dense_index_type,
        "store": {"uri": settings.public_milvus_uri},
    }
