"""GET /users (recently active), GET /users/<id> (profile) and GET /users/<id>/recommendations."""
from __future__ import annotations

import re
from typing import Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..catalog import ID_PATTERN
from ..errors import ApiError
from ..recommend import SOURCES, Recommendations
from ..weights import parse_weights
from ..resources import resources
from ..requests import query_args
from .search import FilterText

bp = Blueprint("users", __name__, url_prefix="/users")

RECENT_EVENTS = 10


class RecommendationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal["hybrid", "ncf", "content", "popular"] = "hybrid"
    limit: int = Field(10, ge=1, le=100)
    category: FilterText | None = None
    exclude_purchased: bool = True
    weights: dict[str, float] | None = None

    @field_validator("weights", mode="before")
    @classmethod
    def _parse_weights(cls, value):
        return None if value is None else parse_weights(str(value), SOURCES)


class RecentUsersParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)


def valid_user_id(user_id: str) -> str:
    if not re.fullmatch(ID_PATTERN, user_id):
        raise ApiError(422, "invalid_field", f"user_id must match {ID_PATTERN}", "user_id")
    return user_id


@bp.get("")
def recent_users():
    """The most recently active users (for pickers)."""
    params = query_args(RecentUsersParams)
    rows = resources().events.recent_users(params.limit)
    return {"results": [{"user_id": user_id, "last_event_at": last_at, "events": count}
                        for user_id, last_at, count in rows]}


@bp.get("/<user_id>")
def user_profile(user_id: str):
    res = resources()
    profile = res.events.profile(valid_user_id(user_id))
    if profile is None:
        raise ApiError(404, "user_not_found", f"no events for user {user_id!r}")
    recent = res.events.recent_events(user_id, RECENT_EVENTS)
    return {
        "user_id": user_id,
        **profile,
        "has_vector": bool(res.users.get([user_id])),
        "recent_events": [event.__dict__ for event in recent],
    }


@bp.get("/<user_id>/recommendations")
def recommendations(user_id: str):
    params = query_args(RecommendationParams)
    result: Recommendations = resources().recommender.recommend(
        valid_user_id(user_id), params.strategy, params.limit, params.category, params.exclude_purchased,
        params.weights,
    )
    return {
        "user_id": user_id,
        "requested_strategy": params.strategy,
        "strategy": result.strategy,
        "cold_start": result.cold_start,
        "weights": {source: round(weight, 6) for source, weight in result.weights.items()},
        "results": [{**item.product, "score": item.score, "scores": item.scores} for item in result.items],
    }
