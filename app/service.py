"""Run the whole service, as `make run` does: the store, the seed and training steps, then gunicorn.

    python -m app.service [--products 2000] [--users 500] [--no-train]

Without MILVUS_URI, the embedded store ($DATA_DIR/milvus.db) is first served on loopback by
`python -m app.milvus_server` (port MILVUS_LITE_PORT) and MILVUS_URI is set to it, so the seed scripts, the
trainer and every gunicorn worker share that one store. With MILVUS_URI set, that store is used as it is.
Then, one after the other: seed the mock catalogue (--resume), seed the mock interactions, train NCF, and
serve with gunicorn (gunicorn.conf.py: 2 workers over a Milvus server).

SIGTERM or SIGINT stops the running step (gunicorn gracefully), then the Lite server; a failing step, or the
Lite server dying, stops everything too. Each child runs in its own session (a Ctrl-C reaches only this
process, which stops them in order) and gets SIGTERM if this process dies, even by SIGKILL (Linux).
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from pymilvus import MilvusClient, MilvusException

from .milvus_server import wait_for_port
from .settings import Settings

log = logging.getLogger("app.service")
ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
LITE_START_SECONDS = 60.0
STOP_SECONDS = 60.0  # after SIGTERM, before SIGKILL (gunicorn's graceful timeout is 30 s)
PR_SET_PDEATHSIG = 1
GUNICORN = ["-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:create_app()"]


class StartError(Exception):
    """The service could not start (said why)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.service", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000, help="mock products to seed (0: none)")
    parser.add_argument("--users", type=int, default=500, help="users whose mock interactions to seed (0: none)")
    parser.add_argument("--no-train", dest="train", action="store_false", help="do not train NCF before serving")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    settings = Settings.from_env()
    env = {**os.environ, "DATA_DIR": str(settings.data_dir.resolve())}  # the children run in the checkout
    lite_server = None
    try:
        if not settings.milvus_uri:
            lite_server = start_lite_server(settings, env, stop)
            env["MILVUS_URI"] = f"http://{LOOPBACK}:{settings.milvus_lite_port}"
        for step in [*preparation_steps(args), GUNICORN]:
            if stop.is_set():
                break
            process = spawn(step, env)
            if step is GUNICORN:
                threading.Thread(target=announce_when_healthy, args=(service_url(env), process), daemon=True).start()
            code = supervise(process, stop, lite_server)
            if code != 0 and not stop.is_set():
                log.error("python %s exited with %s: stopping", " ".join(step), code)
                return code
        return 0
    except StartError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if lite_server is not None:
            terminate(lite_server)


def preparation_steps(args: argparse.Namespace) -> list[list[str]]:
    """The module commands run before serving, in order."""
    steps = []
    if args.products:
        steps.append(["-m", "seed", "--resume", "products", "--count", str(args.products)])
    if args.users:
        steps.append(["-m", "seed", "interactions", "--users", str(args.users)])
    if args.train:
        steps.append(["-m", "ncf", "train", "--source", "events"])
    return steps


def start_lite_server(settings: Settings, env: dict[str, str], stop: threading.Event) -> subprocess.Popen:
    """`python -m app.milvus_server` over DATA_DIR on loopback, once it listens and has loaded the store."""
    port = settings.milvus_lite_port
    if _listening(port):
        raise StartError(f"port {port} is already in use: set MILVUS_LITE_PORT to a free port, "
                         "or MILVUS_URI to the Milvus listening there")
    server = spawn(["-m", "app.milvus_server", "--data-dir", str(settings.data_dir.resolve()), "--host", LOOPBACK,
                    "--port", str(port)], env)
    for _ in range(int(LITE_START_SECONDS)):
        if server.poll() is not None:
            raise StartError(f"the Milvus Lite server exited with {server.returncode} (its log is above)")
        if stop.is_set():
            return server
        if wait_for_port(LOOPBACK, port, 1.0):
            try:
                _load_collections(f"http://{LOOPBACK}:{port}")
            except MilvusException as exc:
                terminate(server)
                raise StartError(f"the Milvus Lite server could not load the store: {exc}") from exc
            return server
    terminate(server)
    raise StartError(f"the Milvus Lite server did not listen on port {port} within {LITE_START_SECONDS:.0f} s")


def _load_collections(uri: str) -> None:
    """Load every collection once, before the other processes connect: Milvus Lite answers no other call while
    it loads one (~13 s for 100,000 products), which would exceed their MILVUS_TIMEOUT."""
    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            client.load_collection(name)
    finally:
        client.close()


def service_url(env: dict[str, str]) -> str:
    """Where gunicorn.conf.py binds (BIND, else loopback:PORT), as a URL this machine can reach."""
    host, port = (env.get("BIND") or f"{LOOPBACK}:{env.get('PORT', '8000')}").rsplit(":", 1)
    return f"http://{LOOPBACK if host in ('', '0.0.0.0', '[::]') else host}:{port}"


def announce_when_healthy(base_url: str, process: subprocess.Popen) -> None:
    try:
        wait_until_healthy(base_url, process, timeout=600)
        log.info("the service is ready at %s", base_url)
    except (RuntimeError, TimeoutError) as exc:
        log.warning("%s", exc)


def wait_until_healthy(base_url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    """Return once GET /health answers 200; RuntimeError if `process` exits first, TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base_url} not healthy after {timeout:.0f} s")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def spawn(module_args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *module_args], cwd=ROOT, env=env, start_new_session=True,
                            preexec_fn=_terminate_with_parent)


def _terminate_with_parent() -> None:
    """In the child, before it runs: ask Linux for a SIGTERM when this launcher dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(process: subprocess.Popen, stop: threading.Event, lite_server: subprocess.Popen | None) -> int:
    """Wait for `process` to exit; stop it first on a stop request or if the Lite server dies."""
    while process.poll() is None:
        if stop.wait(0.5):
            log.info("stopping")
            return terminate(process)
        if lite_server is not None and lite_server.poll() is not None:
            log.error("the Milvus Lite server exited with %s: stopping", lite_server.returncode)
            terminate(process)
            return 1
    return process.returncode


def terminate(process: subprocess.Popen) -> int:
    """SIGTERM, then SIGKILL after STOP_SECONDS; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


if __name__ == "__main__":
    sys.exit(main())
