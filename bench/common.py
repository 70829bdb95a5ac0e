"""Shared pieces of the benchmarks: timing, percentiles, query texts, tables, cached embeddings."""
from __future__ import annotations

import csv
import os
import socket
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
WANDS_QUERIES = ROOT.parent / "shared" / "data" / "wands-queries" / "query.csv"
SHOP_QUERIES = [
    "running shoes", "apple laptop", "noise cancelling headphones", "yoga mat", "espresso coffee beans",
    "green tea", "dark chocolate", "olive oil", "mountain bike", "tennis racket", "denim jeans",
    "winter jacket", "red lipstick", "jigsaw puzzle", "4k television", "car battery", "motor oil",
    "protein powder", "cookbook", "vacuum cleaner", "samsung smartphone", "nike sneakers",
]


def free_port() -> int:
    """A TCP port free on loopback right now (the benchmarks' and the tests' servers bind it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def queries(count: int) -> list[str]:
    """`count` query texts: real WANDS shopper queries (if present) mixed with shop queries."""
    texts = list(SHOP_QUERIES)
    if WANDS_QUERIES.exists():
        with open(WANDS_QUERIES, newline="") as handle:
            texts += [row["query"] for row in csv.DictReader(handle, delimiter="\t") if row["query"]]
    return [texts[i % len(texts)] for i in range(count)]


def timed(function: Callable[[], object]) -> float:
    """Milliseconds one call takes."""
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    values = np.asarray(samples_ms)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99)), "mean": float(values.mean())}


def print_table(title: str, header: list[str], rows: list[list]) -> str:
    """Print (and return) a Markdown table."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _cell(value) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def bench_data_dir(name: str) -> Path:
    path = Path(os.environ.get("BENCH_DIR", RESULTS_DIR)) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
