"""POST /events: interaction events, one or a list; the batch is all-or-nothing."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from flask import Blueprint
from pydantic import Field

from app.api.errors import ApiError
from app.api.metrics import record_events
from app.api.requests import Batch, BatchItems, ResponseModel, operation
from app.core.event_input import MAX_EVENTS_PER_REQUEST, EventIn
from app.core.ingest import UnknownProducts
from app.core.resources import resources
from app.storage.attribution import AttributionRejected

bp = Blueprint("events", __name__)


class EventsAccepted(ResponseModel):
    accepted: int
    duplicates: int
    event_ids: list[str]
    user_vectors: Literal["updated", "pending"] = Field(
        description="pending: the events are stored, their users' vectors are updated when Milvus answers")


@bp.post("/events")
@operation({200: EventsAccepted}, body=Batch(EventIn, max_items=MAX_EVENTS_PER_REQUEST, noun="event"))
def post_events(body: BatchItems):
    """Store events (a repeated event_id is not counted twice) and update the users' vectors.

    An event may name the result list and position it came from (`attribution`); an unknown request_id, or a
    position outside that list or showing another product, is a 422 naming the field and nothing is stored.

    A 200 means the events are committed; `user_vectors` is "pending" when Milvus could not be updated (the
    update is applied later). 503 (`database_unavailable`, or `store_unavailable` for a product that cannot
    be checked while Milvus is down): nothing was stored, retry with the same event ids.
    """
    now = datetime.now(timezone.utc)
    batch = [event.to_event(now) for event in body.items]
    res = resources()
    try:
        attributions = res.impressions.resolve(batch, [event.attribution for event in body.items], body.field)
    except AttributionRejected as exc:
        raise ApiError(422, exc.code, str(exc), exc.field) from None
    try:
        result = res.ingestor.ingest(batch)
    except UnknownProducts as exc:
        raise ApiError(422, "unknown_product", f"no product {exc.product_ids[0]!r} in the catalogue",
                       body.field(exc.positions[0], "product_id")) from None
    res.impressions.attribute(attributions)
    record_events(result.accepted, result.duplicates)
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "event_ids": [event.event_id for event in batch],
        "user_vectors": "updated" if result.vectors_updated else "pending",
    }
