"""Training: POST /train starts NCF training in the background; GET /train[/<job_id>] reports jobs."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..auth import require_api_key
from ..errors import ApiError
from ..requests import json_body
from ..resources import resources
from ..training_jobs import JOB_ID_PATTERN, TrainingInProgress, TrainingParams

bp = Blueprint("training", __name__, url_prefix="/train")

LATEST_JOBS = 20
JOB_FIELDS = ("job_id", "status", "params", "created_at", "started_at", "finished_at", "model_dir", "metrics", "error")


def job_path(job_id: str) -> str:
    return f"/train/{job_id}"


def job_json(job: dict) -> dict:
    return {**{name: job[name] for name in JOB_FIELDS}, "links": {"self": job_path(job["job_id"])}}


@bp.post("")
@require_api_key
def start_training():
    """202 with the new job; 409 naming the job that is still queued or running."""
    params = TrainingParams.model_validate(json_body() if request.get_data() else {})
    try:
        job = resources().training_jobs.start(params)
    except TrainingInProgress as exc:
        error = {"code": "training_in_progress", "message": str(exc), "job_id": exc.job_id}
        return jsonify(error=error), 409
    body = {"job_id": job["job_id"], "status": job["status"], "links": {"self": job_path(job["job_id"])}}
    return body, 202, {"Location": job_path(job["job_id"])}


@bp.get("")
def latest_jobs():
    return {"jobs": [job_json(job) for job in resources().training_jobs.latest(LATEST_JOBS)]}


@bp.get("/<job_id>")
def get_job(job_id: str):
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise ApiError(422, "invalid_field", "job_id must be 32 lowercase hex digits", "job_id")
    job = resources().training_jobs.get(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no training job {job_id!r}")
    return job_json(job)
