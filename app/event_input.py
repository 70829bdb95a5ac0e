"""Validation of incoming interaction events (HTTP and seed scripts alike)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .catalog import Identifier
from .errors import ApiError
from .events import Event

MAX_EVENTS_PER_REQUEST = 1000
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
FUTURE_TOLERANCE = timedelta(days=1)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: Identifier | None = None
    user_id: Identifier
    product_id: Identifier
    event_type: Literal["view", "add_to_cart", "purchase", "rating"]
    rating: float | None = Field(None, ge=1, le=5, allow_inf_nan=False, validate_default=True)
    timestamp: datetime | None = Field(None, description="ISO 8601 or unix seconds; default: now")

    @field_validator("rating")
    @classmethod
    def _rating_only_for_rating_events(cls, rating, info):
        event_type = info.data.get("event_type")
        if event_type == "rating" and rating is None:
            raise ValueError("rating (1-5) is required for a rating event")
        if event_type not in (None, "rating") and rating is not None:
            raise ValueError("rating is only allowed on rating events")
        return rating

    def to_event(self, now: datetime) -> Event:
        moment = self.timestamp or now
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        if not EARLIEST <= moment <= now + FUTURE_TOLERANCE:
            raise ApiError(422, "invalid_field", "timestamp must lie between 1970 and now", "timestamp")
        return Event(self.event_id or uuid.uuid4().hex, self.user_id, self.product_id, self.event_type,
                     self.rating, moment.timestamp())
