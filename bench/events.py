"""Event ingestion throughput and recommendation latency on the embedded defaults.

    python -m bench.events [--products 100000] [--users 5000] [--requests 200]

Uses the benchmark store (bench/stack.py: the mock catalogue `python -m bench.search` builds, the mock
interactions of `--users` users seeded once through the service's ingestion path, an NCF model trained on
them once), served as `make run` serves it, then measures:
ingestion in batches of 1 and of 100 (events/s, user vectors updated) against the bare SQL insert of the
same events as the baseline, and GET /users/<id>/recommendations latency per strategy (hybrid: every
candidate source on) against numpy exact scoring of the user vector over all product vectors.
"""
from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core.resources import EXTENSION_KEY, Resources  # noqa: E402
from app.storage.events import Event, EventStore, make_engine  # noqa: E402
from seed.loader import catalogue_products  # noqa: E402

from .common import bench_data_dir, percentiles, print_table, timed  # noqa: E402
from .stack import prepare_store, served_store, vectors_cache  # noqa: E402


def fresh_events(products: list[dict], count: int, tag: str) -> list[Event]:
    rng = random.Random(tag)
    active = [p["product_id"] for p in products if p["active"]]
    now = time.time()
    return [Event(f"bench-{tag}-{i}", f"bench-user-{rng.randint(0, 999)}", rng.choice(active),
                  rng.choice(["view", "view", "add_to_cart", "purchase"]), None, now - rng.uniform(0, 86400))
            for i in range(count)]


def ingestion_rows(res: Resources, products: list[dict], settings: Settings) -> list[list]:
    baseline_store = EventStore(make_engine(f"sqlite:///{bench_data_dir('sql-baseline') / f'{time.time_ns()}.db'}"),
                                settings.event_weights, settings.popularity_half_life_days)
    baseline_store.init_schema()
    rows = []
    for batch_size, total in ((1, 300), (100, 3000)):
        events = fresh_events(products, total, f"{batch_size}-{time.time_ns()}")
        batches = [events[i:i + batch_size] for i in range(0, total, batch_size)]
        service_s = timed(lambda batches=batches: [res.ingestor.ingest(batch) for batch in batches]) / 1000

        def sql_only(batches=batches):
            for batch in batches:
                with baseline_store.write_transaction() as connection:
                    baseline_store.add(connection, batch, {})

        sql_s = timed(sql_only) / 1000
        rows.append([batch_size, total, round(total / service_s, 1), round(total / sql_s, 1),
                     round(sql_s / service_s, 3)])
    return rows


def recommendation_rows(size: int, n_requests: int, app, res: Resources, settings: Settings) -> list[list]:
    client = app.test_client()
    user_ids = [f"u{n:05d}" for n in range(1, 1001)]
    rng = random.Random(1)
    chosen = [rng.choice(user_ids) for _ in range(n_requests)]
    vectors = np.load(vectors_cache(settings))[:size]
    user_vectors = res.users.get(chosen)
    exact_ms = [timed(lambda u=u: np.argpartition(-(vectors @ u.vector), 10)[:10]) for u in user_vectors.values()]
    rows = []
    for strategy in ("hybrid", "ncf", "item", "content", "similar", "popular"):
        for user_id in chosen[:10]:  # warm-up
            client.get(f"/users/{user_id}/recommendations", query_string={"strategy": strategy})
        samples = [timed(lambda u=u, s=strategy: _ok(client.get(f"/users/{u}/recommendations",
                                                                 query_string={"strategy": s})))
                   for u in chosen]
        stats, exact = percentiles(samples), percentiles(exact_ms)
        rows.append([size, strategy, stats["p50"], stats["p95"], stats["p99"], exact["p50"],
                     round(stats["p50"] / exact["p50"], 1)])
    return rows


def _ok(response) -> None:
    assert response.status_code == 200, response.json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with served_store(args.products) as (settings, _lite_server):
        model = prepare_store(settings, args.products, args.users)
        app = create_app({"SETTINGS": settings})
        res: Resources = app.extensions[EXTENSION_KEY]
        res.warm_up()  # as a gunicorn worker does before it takes requests
        try:
            products = catalogue_products(res.products)
            print_table(
                f"Event ingestion ({args.products:,} products, {res.users.count():,} users; user vectors updated)",
                ["batch size", "events", "service events/s", "bare SQL insert events/s", "service / bare SQL"],
                ingestion_rows(res, products, settings),
            )
            print_table(
                f"GET /users/<id>/recommendations latency, ms ({args.requests} requests, single client, "
                f"in-process app, Milvus Lite server, NCF model {model})",
                ["products", "strategy", "p50", "p95", "p99", "numpy exact top-10 p50", "p50 / numpy"],
                recommendation_rows(args.products, args.requests, app, res, settings),
            )
        finally:
            res.client.close()


if __name__ == "__main__":
    main()
