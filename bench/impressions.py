"""GET /search latency with impression logging on vs off, in the same run, through the Flask app:

    flock /tmp/bench.lock python -m bench.impressions [--catalog 2000 | --size 100000] [--queries 300] [--rounds 4]

--catalog N indexes N mock products into a fresh in-process store; --size N runs over the benchmark store of
bench/stack.py instead (a Milvus Lite server on loopback, as `make run` serves it), with the events and
impressions in a scratch SQLite so the shared store is left as it was.

The same app serves both arms; logging is switched between interleaved rounds (on, off, on, off, ...) so
that load from other processes falls on both alike. Every search carries a user_id (the personalised path,
as in an experiment). Also timed: the logging call alone (numbering the results and buffering the row).
"""
from __future__ import annotations

import argparse
import os
import shutil
from contextlib import contextmanager
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core.catalog import Product  # noqa: E402
from app.core.indexing import index_products  # noqa: E402
from app.core.resources import resources  # noqa: E402
from seed.mock_catalog import generate_products  # noqa: E402

from .common import bench_data_dir, percentiles, print_table, queries, timed  # noqa: E402
from .stack import build_store, served_store  # noqa: E402


@contextmanager
def bench_app(catalog: int, size: int) -> Iterator:
    """The Flask app over `size` products of the benchmark store, or else over a fresh store of `catalog`."""
    scratch = bench_data_dir("impressions")
    shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    if not size:
        app = create_app({"SETTINGS": Settings.from_env(data_dir=scratch)})
        with app.app_context():
            res = resources()
            records = generate_products(catalog, seed=42)
            index_products((Product.model_validate(record) for record in records), res.products, res.encoder)
            res.products.flush()
            yield app
        return
    with served_store(size, database_url=f"sqlite:///{scratch.resolve() / 'events.db'}") as (settings, _server):
        app = create_app({"SETTINGS": settings})
        with app.app_context():
            res = resources()
            try:
                build_store(size, settings, res.encoder)
                yield app
            finally:
                res.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=int, default=2000)
    parser.add_argument("--size", type=int, default=0, help="products of the benchmark store (replaces --catalog)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    texts = queries(args.queries)
    samples = {True: [], False: []}
    with bench_app(args.catalog, args.size) as app:
        client = app.test_client()
        res = resources()
        for text in texts:  # warm up: encoder cache, Milvus segments, SQL tables
            client.get("/search", query_string={"q": text, "user_id": "bench-user"})
        for round_number in range(2 * args.rounds):
            logging_on = round_number % 2 == 0
            res.impressions.enabled = logging_on
            for number, text in enumerate(texts):
                samples[logging_on].append(timed(lambda: client.get(
                    "/search", query_string={"q": text, "user_id": f"bench-{number % 50}"})))
        results = [{"product_id": f"P{i:07d}"} for i in range(10)]
        call = [timed(lambda: res.impressions.present("search", "u", [dict(r) for r in results], {"q": "x"}))
                for _ in range(5000)]
        res.impressions.flush()

    on, off = percentiles(samples[True]), percentiles(samples[False])
    products = args.size or args.catalog
    print_table(f"GET /search, {products} products, {len(samples[True])} searches per arm (interleaved)",
                ["impression logging", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
                [["off (baseline)", off["p50"], off["p95"], off["p99"], off["mean"]],
                 ["on", on["p50"], on["p95"], on["p99"], on["mean"]],
                 ["on − off", on["p50"] - off["p50"], on["p95"] - off["p95"], on["p99"] - off["p99"],
                  on["mean"] - off["mean"]]])
    alone = percentiles(call)
    print_table("The logging call alone (10 results), 5,000 calls", ["p50 ms", "p95 ms", "p99 ms"],
                [[f"{alone['p50']:.4f}", f"{alone['p95']:.4f}", f"{alone['p99']:.4f}"]])


if __name__ == "__main__":
    main()
