"""Training: POST /train starts NCF or search-ranker training in the background; GET /train[/<job_id>] reports
jobs."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import BaseModel, StringConstraints

from app.api.auth import require_api_key
from app.api.errors import ApiError, ErrorDetail
from app.api.requests import ResponseModel, operation
from app.core.ranker import labelled_search_lists
from app.core.resources import resources
from app.storage.training_jobs import JOB_ID_PATTERN, RANKER_PARAMS, TrainingInProgress, TrainingParams

bp = Blueprint("training", __name__, url_prefix="/train")

LATEST_JOBS = 20
JOB_FIELDS = ("job_id", "status", "params", "created_at", "started_at", "finished_at", "model_dir", "metrics", "error")
JobStatus = Literal["queued", "running", "succeeded", "failed"]


class JobPath(BaseModel):
    job_id: Annotated[str, StringConstraints(pattern=f"^{JOB_ID_PATTERN.pattern}$")]


class JobLinks(ResponseModel):
    self: str


class JobStarted(ResponseModel):
    job_id: str
    status: JobStatus
    links: JobLinks


class Job(ResponseModel):
    job_id: str
    status: JobStatus
    params: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    model_dir: str | None
    metrics: dict[str, Any] | None
    error: str | None
    links: JobLinks


class Jobs(ResponseModel):
    jobs: list[Job]


class TrainingConflictDetail(ErrorDetail):
    job_id: str


class TrainingConflict(ResponseModel):
    error: TrainingConflictDetail


def job_path(job_id: str) -> str:
    return f"/train/{job_id}"


def job_json(job: dict) -> dict:
    return {**{name: job[name] for name in JOB_FIELDS}, "links": {"self": job_path(job["job_id"])}}


def check_ranker_request(body: TrainingParams) -> None:
    """The ranker takes a seed only, and trains once RANKER_MIN_FEEDBACK_LISTS search lists led to an event."""
    for name in body.model_fields_set - set(RANKER_PARAMS):
        raise ApiError(422, "not_a_ranker_parameter", f"{name} is an NCF parameter; the ranker takes seed only", name)
    res = resources()
    res.impressions.init_schema()  # the log's tables, created on first use
    labelled, needed = labelled_search_lists(res.engine), res.settings.ranker_min_feedback_lists
    if labelled < needed:
        raise ApiError(409, "not_enough_feedback", f"{labelled} logged search lists led to an event; the ranker "
                       f"trains from {needed} (RANKER_MIN_FEEDBACK_LISTS)", "model")


@bp.post("")
@require_api_key
@operation({202: JobStarted, 409: TrainingConflict}, body=TrainingParams)
def start_training(body: TrainingParams):
    """Start training in the background (`model`: ncf, the default, or ranker): 202 with the new job; 409 naming
    the job still queued or running, or (ranker) while too few searches led to an event."""
    if body.model == "ranker":
        check_ranker_request(body)
    try:
        job = resources().training_jobs.start(body)
    except TrainingInProgress as exc:
        return {"error": {"code": "training_in_progress", "message": str(exc), "job_id": exc.job_id}}, 409
    started = {"job_id": job["job_id"], "status": job["status"], "links": {"self": job_path(job["job_id"])}}
    return started, 202, {"Location": job_path(job["job_id"])}


@bp.get("")
@operation({200: Jobs})
def latest_jobs():
    """The latest training jobs, newest first."""
    return {"jobs": [job_json(job) for job in resources().training_jobs.latest(LATEST_JOBS)]}


@bp.get("/<job_id>")
@operation({200: Job}, path=JobPath, errors=(404,))
def get_job(job_id: str):
    """A training job: status, parameters, times, model directory and metrics or error."""
    job = resources().training_jobs.get(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no training job {job_id!r}")
    return job_json(job)
