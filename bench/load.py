"""Load benchmark: a real gunicorn on loopback, 1, 2 and 4 workers over the 100k-product store.

    python -m bench.load [--products 100000] [--users 5000] [--workers 1,2,4] [--seconds 30] [--clients 8]
                         [--backends onnx,torch]

The store is the benchmarks' one (bench/stack.py: 100k mock products, the mock interactions of `--users`
users, an NCF model trained on them; what is missing is built once), served by the Milvus Lite server, and
gunicorn is started as `python -m app.ops.service` starts them (gunicorn.conf.py). For each encoder backend
(EMBEDDING_BACKEND; their fp32 vectors share one store) and worker count,
`--clients` threads (keep-alive connections) send requests back to back for `--seconds`, after a warm-up:
search 60% (`GET /search`, hybrid), recommendations 30% (`GET /users/<id>/recommendations`, hybrid) and
events 10% (`POST /events`, one view each). Reported: throughput, latency percentiles (all requests and per
kind), errors (any status but 200, or no answer), the share of the workers' request time spent waiting on
Milvus calls (from /metrics), and the resident memory of each worker and of Milvus Lite.
"""
from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app.config.settings import Settings  # noqa: E402
from app.ops.service import GUNICORN, spawn, terminate, wait_until_healthy  # noqa: E402

from .common import free_port, percentiles, print_table, queries  # noqa: E402
from .stack import prepare_store, served_store, service_env  # noqa: E402

MIX = {"search": 0.6, "recommendations": 0.3, "events": 0.1}
WARM_UP_SECONDS = 10.0


class Client:
    """One simulated client: a keep-alive connection sending the mix back to back."""

    def __init__(self, base_url: str, seed: int, products: int, users: int):
        self.base_url, self.products, self.users = base_url, products, users
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.texts = queries(500)

    def run(self, seconds: float) -> list[tuple[str, float, bool]]:
        """(kind, milliseconds, answered 200) of every request sent within `seconds`."""
        samples = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
            started = time.perf_counter()
            try:
                ok = self.send(kind).status_code == 200
            except requests.RequestException:
                ok = False
            samples.append((kind, (time.perf_counter() - started) * 1000, ok))
        return samples

    def send(self, kind: str) -> requests.Response:
        user_id = f"u{self.rng.randint(1, self.users):05d}"
        if kind == "search":
            return self.session.get(f"{self.base_url}/search", params={"q": self.rng.choice(self.texts)}, timeout=60)
        if kind == "recommendations":
            return self.session.get(f"{self.base_url}/users/{user_id}/recommendations", timeout=60)
        event = {"event_id": f"load-{uuid.uuid4().hex}", "user_id": user_id,
                 "product_id": f"P{self.rng.randrange(self.products):07d}", "event_type": "view"}
        return self.session.post(f"{self.base_url}/events", json=event, timeout=60)


def measure(backend: str, workers: int, settings: Settings, args: argparse.Namespace, lite_server_pid: int) -> list:
    """One table row: gunicorn with `workers` workers encoding with `backend` under the mixed load."""
    port = free_port()
    gunicorn = spawn(GUNICORN, service_env(settings, PORT=str(port), WEB_CONCURRENCY=str(workers),
                                           GUNICORN_ACCESS_LOG="", EMBEDDING_BACKEND=backend))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, gunicorn)
        clients = [Client(base_url, seed, args.products, args.users) for seed in range(args.clients)]
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda client: client.run(WARM_UP_SECONDS), clients))
            before = seconds_spent(base_url)
            started = time.monotonic()
            samples = [s for done in pool.map(lambda client: client.run(args.seconds), clients) for s in done]
            elapsed = time.monotonic() - started
            in_requests, in_milvus = (after - earlier for after, earlier in zip(seconds_spent(base_url), before))
        worker_rss = [rss_mb(pid) for pid in children(gunicorn.pid)]
        lite_rss = sum(rss_mb(pid) for pid in children(lite_server_pid))
    finally:
        terminate(gunicorn)
    overall = percentiles([ms for _, ms, _ in samples])
    by_kind = {kind: percentiles([ms for k, ms, _ in samples if k == kind]) for kind in MIX}
    return [backend, workers, args.clients, len(samples), round(len(samples) / elapsed, 1), overall["p50"],
            overall["p95"], overall["p99"], sum(not ok for *_, ok in samples), *(by_kind[kind]["p99"] for kind in MIX),
            round(100 * in_milvus / in_requests), round(max(worker_rss)), round(lite_rss)]


def seconds_spent(base_url: str) -> tuple[float, float]:
    """Seconds the workers have spent answering requests (but /metrics) and in Milvus calls, from /metrics."""
    totals = {"http_request_duration_seconds": 0.0, "milvus_call_duration_seconds": 0.0}
    for family in text_string_to_metric_families(requests.get(f"{base_url}/metrics", timeout=30).text):
        for sample in family.samples:
            if family.name in totals and sample.name.endswith("_sum") and sample.labels.get("endpoint") != "/metrics":
                totals[family.name] += sample.value
    return totals["http_request_duration_seconds"], totals["milvus_call_duration_seconds"]


def children(pid: int) -> list[int]:
    """The child processes of `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured per worker count")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--backends", default="onnx,torch", help="EMBEDDING_BACKEND values (fp32), one row each")
    args = parser.parse_args()

    with served_store(args.products) as (settings, lite_server):
        model = prepare_store(settings, args.products, args.users)
        rows = [measure(backend, int(workers), settings, args, lite_server.pid)
                for backend in args.backends.split(",") for workers in args.workers.split(",")]
    print_table(
        f"Mixed load through gunicorn ({args.products:,} products, {args.users:,} users; search 60%, "
        f"recommendations 30%, events 10%; {args.seconds:.0f} s per row; NCF model {model}; QUERY_CACHE_SIZE="
        f"{settings.query_cache_size}, POPULAR_CACHE_SECONDS={settings.popular_cache_seconds:g}; latencies in ms)",
        ["backend", "workers", "clients", "requests", "requests/s", "p50", "p95", "p99", "errors", "search p99",
         "recommendations p99", "events p99", "time in Milvus %", "RSS per worker MB (max)", "Milvus Lite RSS MB"],
        rows,
    )


if __name__ == "__main__":
    main()
