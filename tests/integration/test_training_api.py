"""POST /train and GET /train against the real trainer subprocess; the API key on write and admin endpoints."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from app import create_app
from app.config.settings import Settings
from app.core.resources import resources
from app.storage.events import Event, EventStore, make_engine
from app.storage.training_jobs import TrainingInProgress, TrainingJobs, TrainingParams, training_jobs
from seed.interactions import generate_interactions
from seed.mock_catalog import generate_products

API_KEY = "test-api-key-7c41d2"
KEY_HEADER = {"X-API-Key": API_KEY}
TRAIN_PARAMS = {"epochs": 2, "batch_size": 256, "embed_dim": 8, "layers": [16, 8], "negatives": 2, "seed": 1}
TRAINING_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory):
    """An app with an API key and its own data directory, holding the events of 30 users."""
    settings = Settings.from_env({}, data_dir=tmp_path_factory.mktemp("training"), api_key=API_KEY,
                                 model_check_seconds=0.0)
    app = create_app({"TESTING": True, "SETTINGS": settings})
    with app.app_context():
        store_events(resources().events)
    return app


@pytest.fixture
def keyed_client(keyed_app):
    return keyed_app.test_client()


def store_events(store: EventStore) -> None:
    products = list(generate_products(200, seed=7))
    events = [Event(e["event_id"], e["user_id"], e["product_id"], e["event_type"], e["rating"], e["timestamp"])
              for e in generate_interactions(products, 30, min_events=8, max_events=15, seed=3, user_prefix="tr-u")]
    with store.write_transaction() as connection:
        store.add(connection, events, {p["product_id"]: p["category"] for p in products})


def wait_until_finished(read_job, job_id: str) -> dict:
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while time.monotonic() < deadline:
        job = read_job(job_id)
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise TimeoutError(f"training job {job_id} not finished after {TRAINING_TIMEOUT_S}s")


def test_training_runs_in_the_background_one_at_a_time(keyed_client, keyed_app):
    response = keyed_client.post("/train", json=TRAIN_PARAMS, headers=KEY_HEADER)
    assert response.status_code == 202, response.json
    job_id = response.json["job_id"]
    assert response.json == {"job_id": job_id, "status": response.json["status"],
                             "links": {"self": f"/train/{job_id}"}}
    assert response.json["status"] in ("queued", "running")
    assert response.headers["Location"] == f"/train/{job_id}"

    second = keyed_client.post("/train", headers=KEY_HEADER)  # empty body: the trainer's defaults
    assert second.status_code == 409
    assert second.json["error"]["code"] == "training_in_progress" and second.json["error"]["job_id"] == job_id
    listed = keyed_client.get("/train").json["jobs"]
    assert [job["job_id"] for job in listed] == [job_id] and listed[0]["params"] == {"model": "ncf", **TRAIN_PARAMS}

    job = wait_until_finished(lambda job_id: keyed_client.get(f"/train/{job_id}").json, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["error"] is None and job["started_at"] <= job["finished_at"]
    neumf = job["metrics"]["neumf"]
    assert 0.0 <= neumf["hr@10"] <= 1.0 and 0.0 <= neumf["ndcg@10"] <= neumf["hr@10"]
    assert {"mf", "toppop"} <= set(job["metrics"]) and job["metrics"]["data"]["users"] == 30
    model_dir = Path(job["model_dir"])
    settings = keyed_app.config["SETTINGS"]
    assert model_dir.is_dir() and model_dir.parent == settings.resolved_models_dir.resolve()
    config = json.loads((model_dir / "config.json").read_text())["train"]
    assert (config["epochs"], config["embed_dim"], config["layers"]) == (2, 8, [16, 8])
    with keyed_app.app_context():
        assert resources().served_model.version == model_dir.name  # hot-swapped in


@pytest.mark.parametrize("body, field", [
    ({"epochs": 0}, "epochs"), ({"epochs": 201}, "epochs"), ({"epochs": "2"}, "epochs"),
    ({"batch_size": 32}, "batch_size"), ({"lr": 0}, "lr"), ({"lr": 1.5}, "lr"), ({"embed_dim": 1024}, "embed_dim"),
    ({"layers": []}, "layers"), ({"layers": [8] * 6}, "layers"), ({"layers": [16, 2048]}, "layers.1"),
    ({"negatives": 51}, "negatives"), ({"seed": -1}, "seed"), ({"dropout": 0.1}, "dropout"),
    ({"model": "xgboost"}, "model"), ({"model": "NCF"}, "model"), ({"model": 1}, "model"), ({"model": None}, "model"),
])
def test_bad_training_params_are_422_naming_the_field(keyed_client, body, field):
    response = keyed_client.post("/train", json=body, headers=KEY_HEADER)
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field


def test_training_body_must_be_a_json_object(keyed_client):
    assert keyed_client.post("/train", json=[1], headers=KEY_HEADER).status_code == 422
    assert keyed_client.post("/train", data="epochs=2", headers=KEY_HEADER).status_code == 415


def test_job_ids_are_checked(keyed_client):
    response = keyed_client.get("/train/not-a-job")
    assert response.status_code == 422 and response.json["error"]["field"] == "job_id"
    response = keyed_client.get(f"/train/{uuid.uuid4().hex}")
    assert response.status_code == 404 and response.json["error"]["code"] == "job_not_found"


@pytest.mark.parametrize("method, path", [("post", "/products"), ("delete", "/products/t-auth-1"), ("post", "/train"),
                                          ("post", "/experiments"), ("post", f"/experiments/{'0' * 32}/stop")])
def test_write_endpoints_need_the_api_key(keyed_client, method, path):
    call = getattr(keyed_client, method)
    missing = call(path, json={"product_id": "t-auth-1", "name": "x"})
    assert missing.status_code == 401 and missing.json["error"]["code"] == "missing_api_key"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for headers in ({"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"X-API-Key": API_KEY[:-1]}):
        wrong = call(path, json={"product_id": "t-auth-1", "name": "x"}, headers=headers)
        assert wrong.status_code == 403 and wrong.json["error"]["code"] == "invalid_api_key"
        assert API_KEY not in wrong.get_data(as_text=True)


def test_the_right_key_opens_the_product_endpoints(keyed_client):
    product = {"product_id": "t-auth-1", "name": "Breville Glass Electric Kettle", "category": "Home"}
    assert keyed_client.post("/products", json=product, headers=KEY_HEADER).status_code == 200
    assert keyed_client.get("/products/t-auth-1").status_code == 200  # reads need no key
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert keyed_client.delete("/products/t-auth-1", headers=bearer).json == {"deleted": "t-auth-1"}


def test_the_key_never_shows(keyed_client, keyed_app, caplog, monkeypatch):
    caplog.set_level("DEBUG")
    status = keyed_client.get("/status")
    assert status.status_code == 200 and API_KEY not in status.get_data(as_text=True)
    assert API_KEY not in keyed_client.get("/train").get_data(as_text=True)
    keyed_client.post("/products", json=[], headers={"X-API-Key": API_KEY + "x"})
    settings = keyed_app.config["SETTINGS"]
    assert API_KEY not in repr(settings) and API_KEY not in caplog.text
    monkeypatch.setenv("API_KEY", API_KEY)
    monkeypatch.setenv("MILVUS_TOKEN", "root:Milvus")
    with keyed_app.app_context():
        trainer_env = resources().training_jobs._trainer_env()
    assert "API_KEY" not in trainer_env
    assert trainer_env["MILVUS_TOKEN"] == "root:Milvus"  # the trainer reads the products' attributes from Milvus
    assert trainer_env["OMP_NUM_THREADS"] == "1"  # beside the workers: their TORCH_THREADS, not every core


def jobs_on(database_url: str, data_dir: Path) -> TrainingJobs:
    settings = Settings.from_env({}, data_dir=data_dir, database_url=database_url)
    engine = make_engine(settings.resolved_database_url)
    EventStore(engine, settings.event_weights, 7.0).init_schema()  # no events: the trainer fails
    jobs = TrainingJobs(engine, settings)
    jobs.init_schema()
    return jobs


def insert_running_job(jobs: TrainingJobs, pid: int, host: str) -> str:
    job_id = uuid.uuid4().hex
    with jobs.engine.begin() as connection:
        connection.execute(insert(training_jobs).values(job_id=job_id, status="running", params={},
                                                        created_at=time.time(), started_at=time.time(),
                                                        pid=pid, host=host))
    return job_id


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_running_job_whose_trainer_is_gone_reads_as_failed(tmp_path):
    jobs = jobs_on("", tmp_path)
    dead = insert_running_job(jobs, dead_pid(), socket.gethostname())
    alive = insert_running_job(jobs, os.getpid(), socket.gethostname())
    elsewhere = insert_running_job(jobs, dead_pid(), "another-host")  # its pid cannot be judged here

    job = jobs.get(dead)
    assert job["status"] == "failed" and job["error"] == "trainer process ended without reporting"
    assert job["finished_at"] is not None
    assert jobs.get(alive)["status"] == "running" and jobs.get(elsewhere)["status"] == "running"


@pytest.fixture
def empty_postgres_url(postgres_url):
    """A PostgreSQL database of its own on the test server (the session one holds other tests' events)."""
    name = f"training_jobs_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_starts_admit_one_job_and_its_failure_is_recorded(backend, tmp_path, request):
    database_url = request.getfixturevalue("empty_postgres_url") if backend == "postgresql" else ""
    jobs = jobs_on(database_url, tmp_path)
    stale = insert_running_job(jobs, dead_pid(), socket.gethostname())  # does not block a new job
    barrier, started, refused = threading.Barrier(6), [], []

    def start():
        barrier.wait()
        try:
            started.append(jobs.start(TrainingParams(epochs=1))["job_id"])
        except TrainingInProgress as exc:
            refused.append(exc.job_id)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 1 and refused == started * 5
    assert jobs.get(stale)["status"] == "failed"

    job = wait_until_finished(jobs.get, started[0])
    assert job["status"] == "failed" and job["params"] == {"model": "ncf", "epochs": 1}
    assert job["error"].startswith("trainer exited with code 2:") and "no weighted events" in job["error"]
    jobs.engine.dispose()
