"""Background training jobs (NCF or the search ranker): one at a time across every worker, their state in SQL
beside the events.

A job is inserted `queued` by a write transaction that first checks that no other job is queued or
running; the transaction holds a lock that every such transaction takes (PostgreSQL: a transaction-scoped
advisory lock; SQLite: BEGIN IMMEDIATE), so two workers starting at once cannot both succeed. The trainer
is `python -m app.ops.cli train` in a subprocess, watched by a daemon thread that records its model
directory and metrics, or its exit code and the tail of its stderr. The search ranker (`model: "ranker"`)
trains in a thread of the worker that received the request instead: it needs the worker's query encoder and
store connection (a Milvus Lite file is opened by one process only); its job records the worker's pid, so a
worker that dies mid-training leaves a job read as failed, as for a dead trainer process.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Callable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, Text, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, make_url

from app.config.settings import Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where `python -m app.ops.cli` is importable
METRICS_FILE = "metrics.json"  # written by the trainer into the model directory
ACTIVE = ("queued", "running")
QUEUED_TIMEOUT_S = 60.0  # a job queued longer than this never got its trainer started
STDERR_TAIL_LINES, STDERR_TAIL_CHARS = 20, 2000
JOB_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
LOCK_NAME = "training_jobs"

metadata = MetaData()

training_jobs = Table(
    "training_jobs", metadata,
    Column("job_id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("params", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("model_dir", String(1024)),
    Column("metrics", JSON),
    Column("error", Text),
    Column("pid", Integer),
    Column("host", String(255)),
    Index("ix_training_jobs_status", "status"),
    Index("ix_training_jobs_created", "created_at"),
)


MODELS = ("ncf", "ranker")
RANKER_PARAMS = ("model", "seed")  # the others are NCF's hyper-parameters


class TrainingParams(BaseModel):
    """The model to train and the hyper-parameters a client may set; the trainer's defaults apply to the others."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: Literal[MODELS] = Field("ncf", description="ncf (recommendations) or ranker (search, trained on feedback)")
    epochs: int | None = Field(None, ge=1, le=200)
    batch_size: int | None = Field(None, ge=64, le=65536)
    lr: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    embed_dim: int | None = Field(None, ge=4, le=512)
    layers: list[Annotated[int, Field(ge=4, le=1024)]] | None = Field(None, min_length=1, max_length=5)
    negatives: int | None = Field(None, ge=1, le=50)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)

    def cli_args(self) -> list[str]:
        """The given parameters as `python -m app.ops.cli train` options."""
        args = []
        for name, value in self.model_dump(exclude_none=True, exclude={"model"}).items():
            args += [f"--{name.replace('_', '-')}", ",".join(map(str, value)) if name == "layers" else str(value)]
        return args


class TrainingInProgress(Exception):
    def __init__(self, job_id: str):
        super().__init__(f"training job {job_id} is still queued or running")
        self.job_id = job_id


class TrainingJobs:
    """Starts training jobs and reports them; a job whose trainer died unreported is recorded as failed."""

    def __init__(self, engine: Engine, settings: Settings, train_ranker: Callable[[int], dict] | None = None):
        self.engine = engine
        self.settings = settings
        self.train_ranker = train_ranker  # seed → {"model_dir", metrics...}: the search ranker, in this process
        self.host = socket.gethostname()

    def init_schema(self) -> None:
        metadata.create_all(self.engine)

    def start(self, params: TrainingParams) -> dict:
        """Record a queued job and launch its trainer; TrainingInProgress if another job is queued or running."""
        job_id = uuid.uuid4().hex
        with self._write_transaction() as connection:
            active = connection.execute(select(training_jobs).where(training_jobs.c.status.in_(ACTIVE)))
            for job in active.mappings().all():
                reason = self._abandoned(job)
                if reason is None:
                    raise TrainingInProgress(job["job_id"])
                _finish(connection, job["job_id"], (job["status"],), status="failed", error=reason)
            connection.execute(insert(training_jobs).values(
                job_id=job_id, status="queued", params=params.model_dump(exclude_none=True), created_at=time.time(),
                host=self.host,
            ))
        if params.model == "ranker":
            self._train_ranker_in_thread(job_id, params.seed or 0)
        else:
            self._launch(job_id, params)
        return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        with self.engine.connect() as connection:
            job = connection.execute(select(training_jobs).where(training_jobs.c.job_id == job_id)).mappings().first()
        return None if job is None else self._current(job)

    def latest(self, limit: int) -> list[dict]:
        """The newest jobs first."""
        with self.engine.connect() as connection:
            jobs = connection.execute(
                select(training_jobs).order_by(training_jobs.c.created_at.desc()).limit(limit)
            ).mappings().all()
        return [self._current(job) for job in jobs]

    def _current(self, job) -> dict:
        reason = self._abandoned(job)
        if reason is None:
            return dict(job)
        with self._write_transaction() as connection:
            _finish(connection, job["job_id"], (job["status"],), status="failed", error=reason)
            return dict(connection.execute(
                select(training_jobs).where(training_jobs.c.job_id == job["job_id"])
            ).mappings().one())

    def _abandoned(self, job) -> str | None:
        """Why an active job can no longer finish (None if it still can, or is not active)."""
        if job["status"] == "running" and job["host"] == self.host and not _process_alive(job["pid"]):
            return "trainer process ended without reporting"
        if job["status"] == "queued" and time.time() - job["created_at"] > QUEUED_TIMEOUT_S:
            return "trainer process never started"
        return None

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """A write transaction serialised with every other one on training jobs (see the module doc)."""
        with self.engine.connect().execution_options(write=True) as connection, connection.begin():
            if self.engine.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(LOCK_NAME, 1))))
            yield connection

    # ---- the trainers ---------------------------------------------------------------------------
    def _train_ranker_in_thread(self, job_id: str, seed: int) -> None:
        with self._write_transaction() as connection:
            connection.execute(
                update(training_jobs).where(training_jobs.c.job_id == job_id, training_jobs.c.status == "queued")
                .values(status="running", pid=os.getpid(), started_at=time.time())
            )
        threading.Thread(target=self._ranker_job, args=(job_id, seed), name=f"training-{job_id[:8]}",
                         daemon=True).start()

    def _ranker_job(self, job_id: str, seed: int) -> None:
        try:
            metrics = dict(self.train_ranker(seed))
            outcome = {"status": "succeeded", "model_dir": metrics.pop("model_dir"), "metrics": metrics}
        except Exception as exc:  # recorded on the job, which is where a client looks
            log.exception("training job %s (ranker) failed", job_id)
            outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[-STDERR_TAIL_CHARS:]}
        try:
            with self._write_transaction() as connection:
                _finish(connection, job_id, ACTIVE, **outcome)
            log.info("training job %s (ranker) %s", job_id, outcome["status"])
        except Exception:
            log.exception("training job %s: could not record the outcome", job_id)

    def _launch(self, job_id: str, params: TrainingParams) -> None:
        command = [sys.executable, "-m", "app.ops.cli", "train",
                   "--out", str(self.settings.resolved_models_dir.resolve()), *params.cli_args()]
        stdout, stderr = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        try:
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=self._trainer_env(), stdin=subprocess.DEVNULL,
                                       stdout=stdout, stderr=stderr)
        except OSError as exc:
            stdout.close()
            stderr.close()
            with self._write_transaction() as connection:
                _finish(connection, job_id, ACTIVE, status="failed", error=f"could not start the trainer: {exc}")
            return
        try:
            with self._write_transaction() as connection:
                connection.execute(
                    update(training_jobs).where(training_jobs.c.job_id == job_id, training_jobs.c.status == "queued")
                    .values(status="running", pid=process.pid, started_at=time.time())
                )
        finally:  # whatever happens, the trainer is watched and its outcome recorded
            threading.Thread(target=self._watch, args=(job_id, process, stdout, stderr),
                             name=f"training-{job_id[:8]}", daemon=True).start()

    def _trainer_env(self) -> dict[str, str]:
        """This process's environment without the API key, plus the settings the trainer reads (it reads the
        events, and the products' attributes from Milvus, hence MILVUS_URI and MILVUS_TOKEN). The trainer
        runs beside the service's workers, so it gets their TORCH_THREADS, not every core."""
        env = {name: value for name, value in os.environ.items() if name != "API_KEY"}
        env.update(DATA_DIR=str(Path(self.settings.data_dir).resolve()),
                   OMP_NUM_THREADS=str(self.settings.torch_threads),
                   DATABASE_URL=self.settings.resolved_database_url,
                   **{f"WEIGHT_{event_type.upper()}": str(weight)
                      for event_type, weight in self.settings.event_weights.items()})
        return env

    def _watch(self, job_id: str, process: subprocess.Popen, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        """Wait for the trainer and record its outcome before reaping it: until then its pid still reads as
        alive, so no reader can declare the job abandoned in between."""
        try:
            exit_code = _wait_without_reaping(process.pid)
            outcome = self._outcome(exit_code, stdout, stderr)
            with self._write_transaction() as connection:
                _finish(connection, job_id, ACTIVE, **outcome)
            log.info("training job %s %s", job_id, outcome["status"])
        except Exception:
            log.exception("training job %s: could not record the outcome", job_id)
        finally:
            process.wait()
            stdout.close()
            stderr.close()

    def _outcome(self, exit_code: int, stdout: IO[bytes], stderr: IO[bytes]) -> dict:
        if exit_code != 0:
            return {"status": "failed", "error": f"trainer exited with code {exit_code}: {self._stderr_tail(stderr)}"}
        stdout.seek(0)
        printed = stdout.read().decode(errors="replace").strip().splitlines()
        model_dir = Path(printed[-1].strip()) if printed else None  # the trainer prints it last
        metrics = _read_metrics(model_dir) if model_dir and model_dir.is_absolute() else None
        if metrics is None:
            return {"status": "failed", "error": f"trainer reported no readable model directory: {printed[-1:]}"}
        return {"status": "succeeded", "model_dir": str(model_dir), "metrics": metrics}

    def _stderr_tail(self, stderr: IO[bytes]) -> str:
        """The last lines of the trainer's stderr (progress bars collapsed), with any secret masked."""
        stderr.seek(0, os.SEEK_END)
        stderr.seek(max(0, stderr.tell() - 64 * 1024))
        lines = [line for line in re.split(r"[\r\n]+", stderr.read().decode(errors="replace")) if line.strip()]
        tail = "\n".join(lines[-STDERR_TAIL_LINES:])
        settings = self.settings
        for secret in filter(None, (settings.api_key, settings.milvus_token,
                                    make_url(settings.resolved_database_url).password)):
            tail = tail.replace(secret, "***")
        return tail[-STDERR_TAIL_CHARS:]


def _finish(connection: Connection, job_id: str, from_statuses: tuple[str, ...], **values) -> None:
    """Record the outcome of a job that is still in one of `from_statuses` (a finished job stays as it is)."""
    connection.execute(
        update(training_jobs)
        .where(training_jobs.c.job_id == job_id, training_jobs.c.status.in_(from_statuses))
        .values(finished_at=time.time(), **values)
    )


def _wait_without_reaping(pid: int) -> int:
    """Block until the child exits, leaving it a zombie (its pid stays taken); its exit code, -signal if killed."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _read_metrics(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _process_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
