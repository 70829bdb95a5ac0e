"""Run the whole service, as `make run` does: the store, the seed steps, gunicorn, then NCF training behind it.

    python -m app.ops.service [--products 2000] [--users 500] [--no-train]

Without MILVUS_URI, the embedded store ($DATA_DIR/milvus.db), or the Lite file MILVUS_URI names, is first
served on loopback by `python -m app.ops.milvus_server` (port MILVUS_LITE_PORT) and MILVUS_URI is set to it, so
the seed scripts, the trainer and every gunicorn worker share that one store. A MILVUS_URI naming a server is
used as it is.
Then: seed the mock catalogue (--resume); then, at the same time, seed the mock interactions (same event ids:
stored ones are skipped) and start gunicorn (gunicorn.conf.py: 2 workers over a Milvus server), whose workers boot
meanwhile. Once both are done the service is announced ready: search and popular/content recommendations answer;
NCF trains behind the running service as a background job (POST /train, app/storage/training_jobs.py; GET /status
shows it), and the workers swap its model in when it is ready. Each step's duration is logged.

SIGTERM or SIGINT stops the running step (gunicorn gracefully, then anything it left running, e.g. a trainer),
then the Lite server; a failing step, or the Lite server dying, stops everything too, and the launcher names
the step, its exit code and the last lines of its output. Each child runs in its own session (a Ctrl-C reaches
only this process, which stops them in order) and gets SIGTERM if this process dies, even by SIGKILL (Linux).
"""
from __future__ import annotations

import argparse
import collections
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

from app.config.lite_uri import lite_file
from app.config.settings import Settings
from app.ops.milvus_server import wait_for_port
from app.storage.products import GRPC_OPTIONS

log = logging.getLogger("app.ops.service")
ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
LITE_START_SECONDS = 60.0
STOP_SECONDS = 60.0  # after SIGTERM, before SIGKILL (gunicorn's graceful timeout is 30 s)
PR_SET_PDEATHSIG = 1
GUNICORN = ["-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:create_app()"]
TAIL_LINES = 20  # of a failed step's output, repeated in the launcher's error


class StartError(Exception):
    """The service could not start (said why)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.ops.service", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000, help="mock products to seed (0: none)")
    parser.add_argument("--users", type=int, default=500, help="users whose mock interactions to seed (0: none)")
    parser.add_argument("--no-train", dest="train", action="store_false", help="do not train NCF behind the service")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    settings = Settings.from_env()
    started = time.monotonic()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # SQLite's events.db, models, encoders (whatever the store)
    # the children run in the checkout, and print at once into the pipe read by `forward_output`
    env = {**os.environ, "DATA_DIR": str(settings.data_dir.resolve()), "PYTHONUNBUFFERED": "1"}
    lite_server, watched = None, []
    try:
        if lite_file(settings.resolved_milvus_uri):
            lite_server = start_lite_server(settings, env, stop)
            env["MILVUS_URI"] = f"http://{LOOPBACK}:{settings.milvus_lite_port}"
            watched = [("the Milvus Lite server", lite_server)]
            log.info("the Milvus Lite server is up (%.0f s after launch)", time.monotonic() - started)
        catalogue_steps, event_steps = preparation_steps(args)
        for name, step in catalogue_steps:
            code = 0 if stop.is_set() else run_step(name, spawn(step, env), stop, watched)
            if code != 0 or stop.is_set():
                return 0 if stop.is_set() else code
        if stop.is_set():
            return 0
        # the workers boot (import, load the encoder, open the store) while the events are seeded
        gunicorn = spawn(GUNICORN, env)
        watched_by_steps = [*watched, ("gunicorn", gunicorn)]
        seeded = threading.Event()
        threading.Thread(target=serve_then_train, args=(service_url(env), gunicorn, settings, args.train, started,
                                                        seeded), daemon=True).start()
        for name, step in event_steps:
            code = run_step(name, spawn(step, env), stop, watched_by_steps)
            if code != 0 or stop.is_set():
                terminate(gunicorn)
                stop_leftovers(gunicorn)
                return 0 if stop.is_set() else code
        seeded.set()
        code = supervise(gunicorn, stop, "gunicorn", watched)
        stop_leftovers(gunicorn)
        return 0 if stop.is_set() else code
    except StartError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if lite_server is not None:
            terminate(lite_server)


Step = tuple[str, list[str]]


def preparation_steps(args: argparse.Namespace) -> tuple[list[Step], list[Step]]:
    """The named module commands run before gunicorn starts, and those run while it boots (the events need the
    stored catalogue; both resume: a re-run skips what is stored)."""
    catalogue = [("seed products", ["-m", "seed", "--resume", "products", "--count", str(args.products)])]
    events = [("seed interactions", ["-m", "seed", "interactions", "--users", str(args.users)])]
    return catalogue if args.products else [], events if args.users else []


def run_step(name: str, process: subprocess.Popen, stop: threading.Event,
             watched: list[tuple[str, subprocess.Popen]]) -> int:
    """`supervise` a preparation step; log how long it took."""
    code = supervise(process, stop, name, watched)
    if code == 0:
        log.info("step %r done in %.0f s", name, time.monotonic() - process.started)
    return code


def serve_then_train(base_url: str, process: subprocess.Popen, settings: Settings, train: bool,
                     started: float, seeded: threading.Event) -> None:
    """Announce the service once it answers and the events are seeded; then start NCF training behind it
    (POST /train)."""
    try:
        wait_until_healthy(base_url, process, timeout=600)
    except (RuntimeError, TimeoutError) as exc:
        log.warning("%s", exc)
        return
    log.info("gunicorn's workers answer (%.0f s after it started)", time.monotonic() - process.started)
    seeded.wait()
    log.info("the service is ready at %s (%.0f s after launch)", base_url, time.monotonic() - started)
    if not train:
        return
    headers = {"X-API-Key": settings.api_key} if settings.api_key else {}
    try:
        response = requests.post(f"{base_url}/train", json={}, headers=headers, timeout=60)
    except requests.RequestException as exc:
        log.warning("could not start NCF training: %s", exc)
        return
    if response.status_code == 202:
        log.info("NCF training in the background (job %s; GET /status shows it): recommendations are popular and "
                 "content-based until its model is swapped in", response.json()["job_id"])
    else:
        log.warning("NCF training not started: %s %s", response.status_code, response.text[:500])


def start_lite_server(settings: Settings, env: dict[str, str], stop: threading.Event) -> subprocess.Popen:
    """`python -m app.ops.milvus_server` over the settings' Lite file on loopback, once it listens and has loaded
    the store."""
    port = settings.milvus_lite_port
    if _listening(port):
        raise StartError(f"port {port} is already in use: set MILVUS_LITE_PORT to a free port, "
                         "or MILVUS_URI to the Milvus listening there")
    server = spawn(["-m", "app.ops.milvus_server", "--db-file", str(lite_file(settings.resolved_milvus_uri)),
                    "--host", LOOPBACK, "--port", str(port)], env)
    for _ in range(int(LITE_START_SECONDS)):
        if server.poll() is not None:
            raise StartError(f"the Milvus Lite server exited with {server.returncode}; its last output:\n"
                             f"{output_tail(server)}")
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
    client = MilvusClient(uri=uri, grpc_options=GRPC_OPTIONS)
    try:
        for name in client.list_collections():
            client.load_collection(name)
    finally:
        client.close()


def service_url(env: dict[str, str]) -> str:
    """Where gunicorn.conf.py binds (BIND, else loopback:PORT), as a URL this machine can reach."""
    host, port = (env.get("BIND") or f"{LOOPBACK}:{env.get('PORT', '8000')}").rsplit(":", 1)
    return f"http://{LOOPBACK if host in ('', '0.0.0.0', '[::]') else host}:{port}"


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


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def spawn(module_args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`python MODULE_ARGS` in its own session; its output is copied to ours, its last lines kept (`.tail`);
    `.started`: when (monotonic)."""
    process = subprocess.Popen([sys.executable, *module_args], cwd=ROOT, env=env, start_new_session=True,
                               preexec_fn=_terminate_with_parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    process.started = time.monotonic()
    process.tail = collections.deque(maxlen=TAIL_LINES)
    process.forwarder = threading.Thread(target=forward_output, args=(process,), daemon=True)
    process.forwarder.start()
    return process


def forward_output(process: subprocess.Popen) -> None:
    """Copy the child's output to this process's stdout as it comes; keep its last lines (progress bars'
    carriage returns end a line) in `process.tail`."""
    partial = b""
    while chunk := os.read(process.stdout.fileno(), 65536):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        *lines, partial = (partial + chunk).replace(b"\r", b"\n").split(b"\n")
        process.tail.extend(line.decode(errors="replace") for line in lines if line.strip())
    if partial.strip():
        process.tail.append(partial.decode(errors="replace"))
    process.stdout.close()


def output_tail(process: subprocess.Popen) -> str:
    """The last lines the child printed (its descendants may hold the pipe open: wait a moment only)."""
    process.forwarder.join(timeout=2)
    return "\n".join(f"    {line}" for line in list(process.tail))


def stop_leftovers(process: subprocess.Popen) -> None:
    """SIGTERM whatever still runs in the exited `process`'s process group (a trainer a worker started)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate_with_parent() -> None:
    """In the child, before it runs: ask Linux for a SIGTERM when this launcher dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(process: subprocess.Popen, stop: threading.Event, name: str,
              watched: list[tuple[str, subprocess.Popen]]) -> int:
    """Wait for step `name` to exit; stop it first on a stop request or if a `watched` (name, process) dies (the
    Lite server; gunicorn beside a seed step). A step that fails is named with its exit code and the end of its
    output."""
    while process.poll() is None:
        if stop.wait(0.5):
            log.info("stopping %s", name)
            return terminate(process)
        for other_name, other in watched:
            if other.poll() is not None:
                log.error("%s exited with %s; its last output:\n%s\nstopping %s", other_name, other.returncode,
                          output_tail(other), name)
                terminate(process)
                return 1
    if process.returncode != 0 and not stop.is_set():
        log.error("step %r (python %s) exited with %s; its last output:\n%s", name, " ".join(process.args[1:]),
                  process.returncode, output_tail(process))
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
