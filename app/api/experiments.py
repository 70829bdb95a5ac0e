"""Experiments: POST /experiments (start), GET /experiments (the latest), GET /experiments/<id>[/results],
POST /experiments/<id>/stop."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from app.api.auth import require_api_key
from app.api.errors import ApiError, validation_error
from app.api.requests import ResponseModel, operation
from app.api.schemas import RecommendationParams, SearchParams
from app.core.experiments import SURFACES, ExperimentRunning
from app.core.resources import resources

bp = Blueprint("experiments", __name__, url_prefix="/experiments")

# What a variant may override, per surface, with the checks of the request parameter it stands for.
VARIANT_PARAMETERS = {"search": (SearchParams, ("mode", "fusion", "dense_weight", "ranker")),
                      "recommendations": (RecommendationParams, ("strategy", "weights", "exclude", "exclude_purchased",
                                                                "cold_start", "blend"))}
VARIANT_MODELS = {
    surface: create_model(f"{surface.title()}VariantParams", __config__=ConfigDict(extra="forbid"),
                          **{name: (model.model_fields[name].annotation, model.model_fields[name]) for name in names})
    for surface, (model, names) in VARIANT_PARAMETERS.items()
}
SHARE_TOLERANCE = 1e-6
LATEST_EXPERIMENTS = 20
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    share: float = Field(gt=0, le=1, allow_inf_nan=False, description="fraction of the users; shares sum to 1")
    params: dict[str, Any] = Field(default_factory=dict, description="request parameters this variant overrides")


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    surface: Literal[SURFACES]
    variants: list[VariantIn] = Field(min_length=2, max_length=10, description="the first is the control")


class ExperimentPath(BaseModel):
    experiment_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class Variant(ResponseModel):
    name: str
    share: float
    params: dict[str, Any]


class Experiment(ResponseModel):
    experiment_id: str
    name: str
    surface: str
    status: Literal["running", "stopped"]
    variants: list[Variant]
    created_at: float
    stopped_at: float | None


class ExperimentList(ResponseModel):
    experiments: list[Experiment]


class ProportionTest(ResponseModel):
    difference: float | None
    difference_ci: list[float] | None
    z: float | None
    p_value: float | None


class VariantResults(Variant):
    impressions: int
    clicks: int
    ctr: float | None
    ctr_ci: list[float]
    add_to_carts: int
    add_to_cart_rate: float | None
    add_to_cart_rate_ci: list[float]
    purchases: int
    purchase_rate: float | None
    purchase_rate_ci: list[float]
    versus_control: dict[str, ProportionTest] | None = Field(None, description="this variant minus the first")


class ExperimentResults(ResponseModel):
    experiment_id: str
    name: str
    surface: str
    status: Literal["running", "stopped"]
    variants: list[VariantResults]


def checked_variants(body: ExperimentIn) -> list[dict]:
    """The variants with their parameters validated for the surface; a 4xx naming the field otherwise."""
    names = [variant.name for variant in body.variants]
    for position, name in enumerate(names):
        if names.index(name) != position:
            raise ApiError(422, "duplicate_variant", f"variant name {name!r} appears twice",
                           f"variants.{position}.name")
    total = sum(variant.share for variant in body.variants)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ApiError(422, "invalid_shares", f"variant shares must sum to 1, got {total:g}", "variants")
    allowed = VARIANT_PARAMETERS[body.surface][1]
    variants = []
    for position, variant in enumerate(body.variants):
        for key in variant.params:
            if key not in allowed:
                raise ApiError(400, "unknown_parameter",
                               f"a {body.surface} variant may set {', '.join(allowed)}, not {key!r}",
                               f"variants.{position}.params.{key}")
        try:
            params = VARIANT_MODELS[body.surface].model_validate(variant.params)
        except ValidationError as exc:
            error = validation_error(exc)
            raise ApiError(422, error.code, error.message, f"variants.{position}.params.{error.field}") from None
        variants.append({"name": variant.name, "share": variant.share,
                         "params": params.model_dump(mode="json", exclude_unset=True)})
    return variants


def experiment_json(row: dict) -> dict:
    return {name: row[name] for name in Experiment.model_fields}


def found(experiment_id: str) -> dict:
    experiment = resources().experiments.get(experiment_id)
    if experiment is None:
        raise ApiError(404, "experiment_not_found", f"no experiment {experiment_id!r}")
    return experiment


@bp.post("")
@require_api_key
@operation({201: Experiment}, body=ExperimentIn, errors=(409,))
def create_experiment(body: ExperimentIn):
    """Define and start an experiment; 409 while another runs on the same surface."""
    variants = checked_variants(body)
    try:
        row = resources().experiments.create(body.name, body.surface, variants)
    except ExperimentRunning as exc:
        raise ApiError(409, "experiment_running", str(exc), "surface") from None
    return experiment_json(row), 201, {"Location": f"/experiments/{row['experiment_id']}"}


@bp.get("")
@operation({200: ExperimentList})
def latest_experiments():
    """The latest experiments, newest first (running and stopped)."""
    return {"experiments": [experiment_json(row) for row in resources().experiments.latest(LATEST_EXPERIMENTS)]}


@bp.get("/<experiment_id>")
@operation({200: Experiment}, path=ExperimentPath, errors=(404,))
def get_experiment(experiment_id: str):
    """An experiment's definition and status."""
    return experiment_json(found(experiment_id))


@bp.post("/<experiment_id>/stop")
@require_api_key
@operation({200: Experiment}, path=ExperimentPath, errors=(404,))
def stop_experiment(experiment_id: str):
    """Stop an experiment: its users get the default settings again (stopping twice is harmless)."""
    found(experiment_id)
    return experiment_json(resources().experiments.stop(experiment_id))


@bp.get("/<experiment_id>/results")
@operation({200: ExperimentResults}, path=ExperimentPath, errors=(404,))
def experiment_results(experiment_id: str):
    """Per variant: impressions, click-through, add-to-cart and purchase rates with 95% intervals and tests."""
    experiment = found(experiment_id)
    res = resources()
    res.impressions.flush()  # this worker's buffered impressions count too
    return {"experiment_id": experiment_id, "name": experiment["name"], "surface": experiment["surface"],
            "status": experiment["status"], "variants": res.experiments.results(experiment)}
