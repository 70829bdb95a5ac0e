"""GET /users (recently active), GET /users/<id> (profile) and GET /users/<id>/recommendations."""
from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from app.api.errors import ApiError
from app.api.requests import ResponseModel, operation
from app.api.schemas import AttributedList, FilterText, StoredProduct
from app.config.weights import EXCLUDABLE, parse_exclude, parse_weights
from app.core.catalog import Identifier
from app.core.recommend import BLENDS, COLD_START_SOURCES, SOURCES, STRATEGIES, Recommendations
from app.core.resources import resources
from app.storage.events import EVENT_TYPES

bp = Blueprint("users", __name__, url_prefix="/users")

RECENT_EVENTS = 10

SOURCE_WEIGHT = rf"({'|'.join(SOURCES)}):[0-9]{{1,6}}(\.[0-9]+)?"  # parse_weights refuses 1e6 and more
SourceWeights = Annotated[
    dict[str, float],
    BeforeValidator(lambda text: parse_weights(str(text), SOURCES)),
    WithJsonSchema({
        "type": "string", "pattern": f"^{SOURCE_WEIGHT}(,{SOURCE_WEIGHT})*$",
        "examples": ["collaborative:1,item:2,content:0.5,popular:0.5"],
        "description": "source:weight pairs; weights non-negative, not all zero",
    }),
]
EXCLUDE_NAME = f"({'|'.join(EXCLUDABLE)})"
Exclusions = Annotated[
    tuple[str, ...],
    BeforeValidator(lambda text: parse_exclude(str(text))),
    WithJsonSchema({
        "type": "string", "pattern": f"^(none|{EXCLUDE_NAME}(,{EXCLUDE_NAME})*)$", "examples": ["purchased,rated"],
        "description": "products not recommended again: those the user purchased, rated, carted or viewed "
                       "(comma separated), or none; default RECOMMENDATION_EXCLUDE",
    }),
]


class RecommendationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal[STRATEGIES] = "hybrid"
    limit: int = Field(10, ge=1, le=100)
    category: FilterText | None = None
    exclude: Exclusions | None = None
    exclude_purchased: bool | None = Field(None, description="deprecated: false means exclude=none")
    weights: SourceWeights | None = None
    cold_start: Literal[COLD_START_SOURCES] = Field(
        "popular", description="what a user without personal sources gets: all-time popular or trending")
    blend: Literal[BLENDS] | None = Field(
        None, description="hybrid blend: rank (weighted rank scores) or learned (the model's blender); default "
                          "RECOMMENDATION_BLEND; weights= implies rank")

    def exclusions(self) -> tuple[str, ...] | None:
        """The event types to exclude (None: the deployment default)."""
        if self.exclude is None and self.exclude_purchased is False:
            return ()
        return self.exclude


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
