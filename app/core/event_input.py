"""Validation of incoming interaction events (HTTP and seed scripts alike)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.catalog import Identifier
from app.storage.events import Event

MAX_EVENTS_PER_REQUEST = 1000
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
FUTURE_TOLERANCE = timedelta(days=1)


class Attribution(BaseModel):
    """The result list (its request_id) and the 1-based position in it that led to an event."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    position: int = Field(ge=1, le=1000)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: Identifier | None = None
    user_id: Identifier
    product_id: Identifier
    event_type: Literal["view", "add_to_cart", "purchase", "rating"]
    rating: float | None = Field(None, ge=1, le=5, strict=True, allow_inf_nan=False, validate_default=True)
    timestamp: datetime | None = Field(None, description="ISO 8601 or unix seconds, from 1970 to now + 1 day; "
                                                         "default: now")
    attribution: Attribution | None = None

    @field_validator("rating")
    @classmethod
    def _rating_only_for_rating_events(cls, rating, info):
        event_type = info.data.get("event_type")
        if event_type == "rating" and rating is None:
            raise ValueError("rating (1-5) is required for a rating event")
        if event_type not in (None, "rating") and rating is not None:
            raise ValueError("rating is only allowed on rating events")
        return rating

    @field_validator("timestamp")
    @classmethod
    def _plausible_time(cls, moment: datetime | None) -> datetime | None:
        """An aware time (naive means UTC) between 1970 and now + 1 day."""
        if moment is None:
            return None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        if not EARLIEST <= moment <= datetime.now(timezone.utc) + FUTURE_TOLERANCE:
            raise ValueError("timestamp must lie between 1970 and now")
        return moment

    def to_event(self, now: datetime) -> Event:
        moment = self.timestamp or now
        return Event(self.event_id or uuid.uuid4().hex, self.user_id, self.product_id, self.event_type,
                     self.rating, moment.timestamp())
