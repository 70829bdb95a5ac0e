"""POST /events: interaction events, one or a list; the batch is all-or-nothing."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint
from pydantic import TypeAdapter

from ..errors import ApiError
from ..event_input import MAX_EVENTS_PER_REQUEST, EventIn
from ..ingest import UnknownProducts
from ..requests import json_body
from ..resources import resources

bp = Blueprint("events", __name__)

_events_adapter = TypeAdapter(list[EventIn])


@bp.post("/events")
def post_events():
    """Store events (a repeated event_id is not counted twice) and update the users' vectors."""
    body = json_body()
    single = not isinstance(body, list)
    items = [body] if single else body
    if not items:
        raise ApiError(422, "empty_batch", "send one event or a non-empty list")
    if len(items) > MAX_EVENTS_PER_REQUEST:
        raise ApiError(413, "batch_too_large", f"at most {MAX_EVENTS_PER_REQUEST} events per request")
    now = datetime.now(timezone.utc)
    batch = [event.to_event(now) for event in _events_adapter.validate_python(items)]
    try:
        result = resources().ingestor.ingest(batch)
    except UnknownProducts as exc:
        field = "product_id" if single else f"{exc.positions[0]}.product_id"
        raise ApiError(422, "unknown_product", f"no product {exc.product_ids[0]!r} in the catalogue", field) from None
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "event_ids": [event.event_id for event in batch],
        "user_vectors": "updated" if result.vectors_updated else "pending",
    }
