"""GET /users (recently active), GET /users/<id> (profile) and GET /users/<id>/recommendations."""
from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from app.api.errors import ApiError
from app.api.requests import ResponseModel, operation
from app.api.schemas import AttributedList, RecommendationParams, StoredProduct
from app.core.catalog import Identifier
from app.core.recommend import BLENDS, Recommendations
from app.core.resources import resources
from app.storage.events import EVENT_TYPES

bp = Blueprint("users", __name__, url_prefix="/users")

RECENT_EVENTS = 10

class RecentUsersParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)


class UserPath(BaseModel):
    user_id: Identifier = Field(examples=["u00001"])


class RecentUser(ResponseModel):
    user_id: str
    last_event_at: float
    events: int


class RecentUsers(ResponseModel):
    results: list[RecentUser]


EventType = Literal[EVENT_TYPES]


class LastEvent(ResponseModel):
    event_id: str
    product_id: str
    event_type: EventType
    rating: float | None
    occurred_at: float = Field(description="unix seconds")


class StoredEvent(LastEvent):
    user_id: str


class UserProfile(ResponseModel):
    user_id: str
    counts: dict[EventType, int]
    total_events: int
    first_event_at: float
    last_event: LastEvent
    pending_vector_updates: int
    has_vector: bool
    recent_events: list[StoredEvent]


class RecommendedProduct(StoredProduct):
    position: int = Field(description="1-based, for POST /events attribution")
    score: float = Field(description="the weighted sum of `scores` (blend rank), or the blender's score (learned)")
    scores: dict[str, float | None] = Field(
        description="each source's rank score over the candidates, (k + 1) / (k + rank); None: no opinion")
    sources: list[str] = Field(description="the sources that proposed the product")


class UserRecommendations(AttributedList):
    user_id: str
    requested_strategy: str
    strategy: str
    cold_start: bool
    weights: dict[str, float] = Field(description="the rank blend's effective weights ({} for the learned blend)")
    blend: Literal[BLENDS] = Field(description="the blend used: learned needs a model with a blender that knows "
                                               "the user, else rank")
    model: str | None = Field(description="the collaborative model version used, if any")
    results: list[RecommendedProduct]


@bp.get("")
@operation({200: RecentUsers}, query=RecentUsersParams)
def recent_users(params: RecentUsersParams):
    """The most recently active users (for pickers)."""
    rows = resources().events.recent_users(params.limit)
    return {"results": [{"user_id": user_id, "last_event_at": last_at, "events": count}
                        for user_id, last_at, count in rows]}


@bp.get("/<user_id>")
@operation({200: UserProfile}, path=UserPath, errors=(404,))
def user_profile(user_id: str):
    """Event counts, first and last event, recent events and user-vector state of a user with events."""
    res = resources()
    profile = res.events.profile(user_id)
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
@operation({200: UserRecommendations}, path=UserPath, query=RecommendationParams)
def recommendations(user_id: str, params: RecommendationParams):
    """Recommendations by strategy; an unknown user (or one without a vector) gets popular products."""
    res = resources()
    assignment = res.experiments.assignment("recommendations", user_id)
    if assignment:
        params = params.model_copy(update=assignment.params)
    result: Recommendations = res.recommender.recommend(
        user_id, params.strategy, params.limit, params.category, params.exclusions(), params.weights,
        params.cold_start, params.blend,
    )
    results = [{**item.product, "score": item.score, "scores": item.scores, "sources": item.sources}
               for item in result.items]
    served = {"strategy": result.strategy, "weights": params.weights, "exclude": params.exclusions(),
              "cold_start": params.cold_start, "blend": result.blend}
    return {
        **res.impressions.present("recommendations", user_id, results, served, assignment),
        "user_id": user_id,
        "requested_strategy": params.strategy,
        "strategy": result.strategy,
        "cold_start": result.cold_start,
        "weights": {source: round(weight, 6) for source, weight in result.weights.items()},
        "blend": result.blend,
        "model": result.model,
        "results": results,
    }
