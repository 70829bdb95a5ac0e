"""The first run as `make run` does it (`python -m app.ops.service`): it answers once seeded, trains NCF behind the
running service and swaps the model in; a failing step is named with its exit code and output; seeding a file
shows a progress bar with its total and a rate."""
import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import ROOT, free_port, milvus_lite_server, run_module, service_env, wait_until_healthy
from tests.system.test_serving_stack import descendants, start_service, wait_until_gone

pytestmark = pytest.mark.slow


def wait_until_ready(log: Path, process: subprocess.Popen, timeout: float = 600) -> str:
    """The launcher's log once it says the service is ready (the events seeded and gunicorn answering: /health
    answers as soon as the workers have booted, which may be before the events are in)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if "the service is ready" in (text := log.read_text()):
            return text
        time.sleep(0.5)
    raise AssertionError(log.read_text()[-3000:])


def test_serves_before_training_then_swaps_the_trained_model_in(tmp_path):
    service, base_url, lite_port = start_service(tmp_path, "--products", "80", "--users", "30")
    log = tmp_path / "service.log"
    try:
        text = wait_until_ready(log, service)
        # gunicorn started once the catalogue was seeded, while the interactions were being seeded
        assert (text.index("step 'seed products' done") < text.index("Starting gunicorn")
                < text.index("step 'seed interactions' done") < text.index("the service is ready"))
        assert "gunicorn's workers answer" in text
        processes = descendants(service.pid)
        status = requests.get(f"{base_url}/status", timeout=30).json()
        assert status["recommendations"]["ncf_model"] is None  # no model yet: served without one
        assert requests.get(f"{base_url}/search", params={"q": "tea"}, timeout=60).status_code == 200
        recommended = requests.get(f"{base_url}/users/u00001/recommendations", timeout=60)
        assert recommended.status_code == 200 and recommended.json()["results"], recommended.text
        deadline, seen_training = time.monotonic() + 600, False
        while time.monotonic() < deadline:  # the launcher starts the job right after the service answers
            recommendations = requests.get(f"{base_url}/status", timeout=30).json()["recommendations"]
            seen_training |= recommendations["training"]
            if recommendations["ncf_model"] and not recommendations["training"]:  # swapped in, job recorded
                break
            time.sleep(1)
        assert seen_training and recommendations["ncf_model"], log.read_text()[-3000:]
        (job,) = requests.get(f"{base_url}/train", timeout=30).json()["jobs"]
        assert job["status"] == "succeeded" and recommendations["ncf_model"] in job["model_dir"]
        assert "NCF training in the background" in log.read_text()
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]
    wait_until_gone(processes, lite_port)


def test_a_failing_step_is_named_with_its_exit_code_and_output(tmp_path):
    env = service_env(tmp_path / "data", EMBEDDING_MODEL=str(tmp_path / "no-such-model"),
                      MILVUS_LITE_PORT=str(free_port()), PORT=str(free_port()))
    failed = run_module("app.ops.service", "--products", "5", "--users", "0", env=env)
    assert failed.returncode != 0
    assert "step 'seed products' (python -m seed --resume products --count 5) exited with 1" in failed.stderr, \
        failed.stderr[-3000:]
    assert "its last output:" in failed.stderr and "no-such-model" in failed.stderr.split("its last output:")[1]


def test_seeding_a_file_shows_its_total_and_a_rate(tmp_path):
    catalogue = tmp_path / "catalogue.csv"
    with open(catalogue, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product_id", "name", "category", "price"])
        writer.writerows([f"c{i}", f"Green tea number {i}", "Tea", "3.5"] for i in range(12))
    seeded = run_module("seed", "catalog", str(catalogue), env=service_env(tmp_path / "data"))
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    assert "12/12" in seeded.stderr and "product/s" in seeded.stderr, seeded.stderr[-2000:]


SPAWNS_AFTER_GRPC = """
import subprocess, sys
import app  # as every process of the project: pymilvus imported by app/__init__.py
from pymilvus import MilvusClient
client = MilvusClient(uri=sys.argv[1])
client.list_collections()
client.close()
codes = [subprocess.run([sys.executable, "-c", "pass"], start_new_session=True, preexec_fn=lambda: None).returncode
         for _ in range(60)]
print(sorted(set(codes)))
"""


def test_processes_that_used_grpc_start_their_children_reliably(tmp_path):
    """With gRPC's fork support on, ~6% of such spawns died of SIGABRT before running (-6): the launcher's
    steps, a worker's trainer. The chance that 60 spawns pass with it on is ~2%."""
    with milvus_lite_server(tmp_path / "data", tmp_path / "lite.log") as (uri, _):
        done = subprocess.run([sys.executable, "-c", SPAWNS_AFTER_GRPC, uri], cwd=ROOT, capture_output=True, text=True,
                              env=service_env(tmp_path / "data"), timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("[0]"), (done.stdout, done.stderr[-2000:])


def test_make_run_serves_the_lite_file_milvus_uri_names(tmp_path):
    port, lite_file = free_port(), tmp_path / "other.db"
    env = service_env(tmp_path / "data", PORT=str(port), MILVUS_LITE_PORT=str(free_port()), GUNICORN_ACCESS_LOG="",
                      MILVUS_URI=str(lite_file))
    service = subprocess.Popen([sys.executable, "-m", "app.ops.service", "--products", "5", "--users", "0", "--no-train"],
                               cwd=ROOT, env=env, stdout=open(tmp_path / "service.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", service, timeout=600)
        assert requests.get(f"http://127.0.0.1:{port}/status", timeout=30).json()["collections"]["products"] == 5
        assert lite_file.exists() and not (tmp_path / "data" / "milvus.db").exists()
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=120) == 0, (tmp_path / "service.log").read_text()[-3000:]
