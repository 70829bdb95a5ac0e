"""served_model_info: the models (embedding, ncf) a process serves, for GET /metrics."""
from __future__ import annotations

from prometheus_client import Gauge

SERVED_MODELS = Gauge("served_model_info", "1 for each model a live process serves, by kind (embedding, ncf) and name",
                      ["kind", "name"], multiprocess_mode="livemax")


def record_served_model(kind: str, name: str, replaced: str | None = None) -> None:
    """This process now serves model `name` of `kind`, instead of `replaced` if given."""
    if replaced and replaced != name:
        SERVED_MODELS.labels(kind, replaced).set(0)
    SERVED_MODELS.labels(kind, name).set(1)
