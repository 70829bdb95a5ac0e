"""The service as `make run` starts it (`python -m app.ops.service`), on a temporary data dir and free ports: the
Milvus Lite server, the seed steps, gunicorn with 2 workers sharing the store with a seed script run beside
it, and nothing left running once it stops."""
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from app.ops.milvus_server import wait_for_port
from tests.helpers import ROOT, free_port, run_module, service_env, wait_until_healthy

pytestmark = pytest.mark.slow


def start_service(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str, int]:
    """`python -m app.ops.service ARGS` on free ports: (the process, its base URL, the Lite server's port)."""
    port, lite_port = free_port(), free_port()
    env = service_env(tmp_path / "data", PORT=str(port), MILVUS_LITE_PORT=str(lite_port), GUNICORN_ACCESS_LOG="")
    process = subprocess.Popen([sys.executable, "-m", "app.ops.service", *args], cwd=ROOT, env=env,
                               stdout=open(tmp_path / "service.log", "w"), stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}", lite_port


def live_processes() -> dict[int, int]:
    """pid → parent pid of every process but zombies."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:  # exited meanwhile
            continue
        if state != "Z":
            table[int(stat.parent.name)] = int(parent)
    return table


def descendants(pid: int) -> set[int]:
    table = live_processes()
    found, queue = set(), [pid]
    while queue:
        parent = queue.pop()
        children = {child for child, its_parent in table.items() if its_parent == parent}
        found |= children
        queue.extend(children)
    return found


def alive(pids: set[int]) -> set[int]:
    return pids & live_processes().keys()


def wait_until_gone(pids: set[int], port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (alive(pids) or wait_for_port("127.0.0.1", port, 0.1)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(pids), f"still running: {alive(pids)}"
    assert not wait_for_port("127.0.0.1", port, 0.5), f"port {port} still open"


def test_workers_and_a_seed_script_share_the_store_and_stop_with_the_service(tmp_path):
    service, base_url, lite_port = start_service(tmp_path, "--products", "60", "--users", "5", "--no-train")
    try:
        wait_until_healthy(base_url, service, timeout=600)
        processes = descendants(service.pid)  # Lite server and its Milvus binary, gunicorn and its 2 workers
        assert len(processes) >= 5, processes
        seeded = run_module("seed", "--resume", "products", "--count", "80",
                            env=service_env(tmp_path / "data", MILVUS_URI=f"http://127.0.0.1:{lite_port}"))
        assert seeded.returncode == 0 and "written=20 already_stored=60" in seeded.stdout, seeded.stderr[-3000:]
        status = requests.get(f"{base_url}/status", timeout=30).json()
        assert status["collections"]["products"] == 80 and status["store"]["uri"].endswith(f":{lite_port}")
        newest = requests.get(f"{base_url}/products/P0000079", timeout=30).json()  # written by the script

        def request(n: int) -> int:
            if n % 3 == 0:
                event = {"user_id": f"stack-u{n}", "product_id": newest["product_id"], "event_type": "view"}
                return requests.post(f"{base_url}/events", json=event, timeout=60).status_code
            if n % 3 == 1:
                return requests.get(f"{base_url}/users/u00001/recommendations", timeout=60).status_code
            return requests.get(f"{base_url}/search", params={"q": f"present {n}"}, timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(request, range(48))) == {200}
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=120)
    assert code == 0, (tmp_path / "service.log").read_text()[-3000:]
    wait_until_gone(processes, lite_port)


def test_the_lite_server_does_not_outlive_a_killed_launcher(tmp_path):
    service, _, lite_port = start_service(tmp_path, "--products", "0", "--users", "0", "--no-train")
    try:
        assert wait_for_port("127.0.0.1", lite_port, 120), (tmp_path / "service.log").read_text()[-3000:]
        processes = descendants(service.pid)
    finally:
        service.kill()
        service.wait()
    wait_until_gone(processes, lite_port)
