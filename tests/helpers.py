"""Helpers for tests that run the real programs (gunicorn, the seed CLI) as subprocesses."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NoReturn

import pytest

from app.ops.service import wait_until_healthy  # noqa: F401 (also used by the tests)
from bench.common import free_port

ROOT = Path(__file__).resolve().parent.parent
# The read-only shared data sets live beside the checkout (../shared/data), or where SHARED_DATA_DIR says.
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))


def unavailable(reason: str) -> NoReturn:
    """A test's outside dependency (Chromium, PostgreSQL) is absent: skip locally, fail under CI (CI=true),
    where it must be there."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI={os.environ['CI']}: required)")
    pytest.skip(reason)


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MILVUS_URI", "MILVUS_TOKEN")}
    # Popularity read fresh, as in the in-process tests (conftest.settings)
    env.update(DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), POPULAR_CACHE_SECONDS="0", **extra)
    return env


def run_module(module: str, *args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def gunicorn_server(data_dir: Path, log: Path, **extra_env: str) -> Iterator[str]:
    """gunicorn (gunicorn.conf.py) serving `data_dir` on a free loopback port (no access log unless
    GUNICORN_ACCESS_LOG is given): yields its base URL, and at the end checks it stopped cleanly on SIGTERM."""
    port = free_port()
    env = service_env(data_dir, **{"PORT": str(port), "GUNICORN_ACCESS_LOG": "", **extra_env})
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]


@contextmanager
def milvus_lite_server(data_dir: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m app.ops.milvus_server` over `data_dir` on a free loopback port: (its MILVUS_URI, the process).

    Stopped (SIGTERM) on exit; a test may stop and restart it itself with `restart_milvus_lite_server`.
    """
    port = free_port()
    process = _start_milvus_lite(data_dir, port, log)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop_process(process)


def _start_milvus_lite(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    from app.ops.milvus_server import wait_for_port

    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.ops.milvus_server", "--data-dir", str(data_dir), "--port", str(port)],
            cwd=ROOT, env=service_env(data_dir), stdout=handle, stderr=subprocess.STDOUT,
        )
    if not wait_for_port("127.0.0.1", port, 60):
        stop_process(process)
        raise RuntimeError(f"Milvus Lite server did not start; see {log}")
    return process


def restart_milvus_lite_server(uri: str, data_dir: Path, log: Path) -> subprocess.Popen:
    """Start the server again on the port of `uri` (after the test stopped it)."""
    return _start_milvus_lite(data_dir, int(uri.rsplit(":", 1)[1]), log)


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_vectors_equal_a_rebuild(ingestor, user_ids: list[str]) -> None:
    """No update is pending, and the users' vectors and counts, built event by event, equal those rebuilt
    from the event log (the rebuild overwrites them)."""
    import numpy as np

    with ingestor.events.engine.connect() as connection:
        assert not ingestor.events.events_of(connection, user_ids, pending_only=True)
    incremental = ingestor.users.get(user_ids)
    ingestor.rebuild(user_ids)
    rebuilt = ingestor.users.get(user_ids)
    assert set(incremental) == set(rebuilt) == set(user_ids)
    for user_id in user_ids:
        assert incremental[user_id].counts == rebuilt[user_id].counts, user_id
        assert np.allclose(incremental[user_id].vector, rebuilt[user_id].vector, rtol=1e-4, atol=1e-5), user_id


def eventually(check, timeout: float, interval: float = 0.25):
    """Call `check` until it returns something true (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"not true within {timeout} s: {check}"
        time.sleep(interval)
    return result


def ingest_mock_interactions(res, catalog: list[dict], users: int, seed: int, prefix: str, min_events: int = 10,
                             max_events: int = 20) -> None:
    """Mock interactions of `users` users (ids `<prefix>00001`...) over the first 300-400 active products,
    ingested through the service's path."""
    from app.storage.events import Event
    from seed.interactions import generate_interactions

    products = [p for p in catalog if p["active"]][:400]
    events = [Event(e["event_id"], e["user_id"], e["product_id"], e["event_type"], e["rating"], e["timestamp"])
              for e in generate_interactions(products, users, min_events=min_events, max_events=max_events,
                                             seed=seed, user_prefix=prefix)]
    for start in range(0, len(events), 200):
        res.ingestor.ingest(events[start:start + 200])


def products_of_another_process(res, **settings):
    """A product store over the app's collection with its own cache, as another process has (`settings`:
    overrides of the app's)."""
    from app.storage.products import ProductStore

    store = ProductStore(res.client, res.settings.model_copy(update=settings), res.encoder.dimension)
    store.ensure_collection()
    return store
