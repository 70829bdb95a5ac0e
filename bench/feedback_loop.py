"""The feedback loop end to end, through the service's own endpoints, on the mock catalogue:

    python -m bench.feedback_loop [--catalog 600] [--logging-searches 3000] [--experiment-searches 5000] [--seed 0]

1. simulated shoppers (seed/shoppers.py) search (GET /search with their user_id), look at the results with a
   position bias, and click / buy by a hidden relevance; their events go to POST /events with attribution;
2. the ranker is trained on the logged impressions and attributed events by POST /train {"model": "ranker"}
   (the background job; `python -m app.ops.cli train-ranker` runs the same code);
3. an experiment (POST /experiments) splits new shoppers between control and the ranker variant; its own
   results (GET /experiments/<id>/results) give purchases per search with 95% intervals and the test, and
   the searches per arm the observed difference needs (two-sided 5% test, 80% power);
4. offline: nDCG@10 of the hidden relevance for every query, control order vs ranker order (GET /search
   with and without ranker=true), each query's ideal taken over its 50 hybrid candidates.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core.catalog import Product  # noqa: E402
from app.core.experiments import Z_95  # noqa: E402
from app.core.indexing import index_products  # noqa: E402
from app.core.ranker import ndcg_at  # noqa: E402
from app.core.resources import resources  # noqa: E402
from seed.mock_catalog import generate_products  # noqa: E402
from seed.shoppers import Shopper, relevance, shopper_queries  # noqa: E402

from .common import bench_data_dir, print_table  # noqa: E402

CATALOG_SEED = 42
Z_80 = 0.8416212335729143  # one-sided standard normal quantile of 80% power
TRAINING_TIMEOUT_S = 1800


def searches_per_arm(rate_a: float, rate_b: float) -> float:
    """Searches per arm a two-sided 5% two-proportion test needs to detect rate_b - rate_a with 80% power."""
    variance = rate_a * (1 - rate_a) + rate_b * (1 - rate_b)
    return (Z_95 + Z_80) ** 2 * variance / (rate_b - rate_a) ** 2 if rate_a != rate_b else math.inf


def train_ranker(client) -> dict:
    """POST /train {"model": "ranker"} and wait for the job; its metrics."""
    started = client.post("/train", json={"model": "ranker"})
    assert started.status_code == 202, started.get_json()
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while time.monotonic() < deadline:
        job = client.get(f"/train/{started.get_json()['job_id']}").get_json()
        if job["status"] == "succeeded":
            return {"model_dir": job["model_dir"], **job["metrics"]}
        assert job["status"] in ("queued", "running"), job["error"]
        time.sleep(1)
    raise TimeoutError("ranker training did not finish")


def shop(client, queries: list[str], searches: int, prefix: str, seed: int) -> None:
    """`searches` shoppers each search once and act on the page; their events are posted with attribution."""
    rng = random.Random(seed)
    for number in range(searches):
        shopper = Shopper(f"{prefix}-{number}", rng)
        query = rng.choice(queries)
        page = client.get("/search", query_string={"q": query, "user_id": shopper.user_id, "limit": 10})
        body = page.get_json()
        events = shopper.act(query, body["results"], body["request_id"])
        if events:
            answer = client.post("/events", json=events)
            assert answer.status_code == 200, answer.get_json()


def offline_ndcg(client, queries: list[str], candidates: int) -> tuple[float, float]:
    """Mean nDCG@10 of the hidden relevance: hybrid order vs ranker order, ideal over the candidates."""
    control, ranked = [], []
    for query in queries:
        pool = client.get("/search", query_string={"q": query, "limit": candidates}).get_json()["results"]
        ideal = [relevance(query, item) * 3 for item in pool]
        for sink, flag in ((control, "false"), (ranked, "true")):
            page = client.get("/search", query_string={"q": query, "limit": 10, "ranker": flag}).get_json()
            sink.append(ndcg_at([relevance(query, item) * 3 for item in page["results"]], ideal))
    return sum(control) / len(control), sum(ranked) / len(ranked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=int, default=600)
    parser.add_argument("--logging-searches", type=int, default=3000)
    parser.add_argument("--experiment-searches", type=int, default=5000,
                        help="the default gives ~2,500 per arm: enough for +4 points at ~55%% (80%% power)")
    parser.add_argument("--seed", type=int, default=0, help="of the simulated shoppers (logging and experiment)")
    args = parser.parse_args()

    data_dir = bench_data_dir("feedback_loop")
    shutil.rmtree(data_dir)
    settings = Settings.from_env(data_dir=data_dir, model_check_seconds=0, popular_cache_seconds=0)
    app = create_app({"SETTINGS": settings})
    client = app.test_client()
    started = time.perf_counter()
    with app.app_context():
        res = resources()
        catalog = list(generate_products(args.catalog, seed=CATALOG_SEED))
        index_products((Product.model_validate(record) for record in catalog), res.products, res.encoder)
        res.products.flush()
        queries = shopper_queries(catalog)
        print(f"catalogue {len(catalog)} products, {len(queries)} queries", flush=True)

        shop(client, queries, args.logging_searches, "logging", seed=1 + 2 * args.seed)
        res.impressions.flush()
        trained = train_ranker(client)
        print(f"ranker trained: {trained}", flush=True)

        before = offline_ndcg(client, queries, settings.hybrid_candidates)
        experiment = client.post("/experiments", json={"name": "feedback ranker", "surface": "search", "variants": [
            {"name": "control", "share": 0.5, "params": {}},
            {"name": "ranker", "share": 0.5, "params": {"ranker": True}},
        ]}).get_json()
        shop(client, queries, args.experiment_searches, "experiment", seed=2 + 2 * args.seed)
        results = client.get(f"/experiments/{experiment['experiment_id']}/results").get_json()
        client.post(f"/experiments/{experiment['experiment_id']}/stop")

    rows = []
    for variant in results["variants"]:
        test = (variant.get("versus_control") or {}).get("purchase_rate") or {}
        rows.append([variant["name"], variant["impressions"], variant["clicks"], f"{variant['ctr']:.3f}",
                     variant["purchases"], f"{variant['purchase_rate']:.3f}",
                     "[{:.3f}, {:.3f}]".format(*variant["purchase_rate_ci"]),
                     f"{test['p_value']:.2g}" if test.get("p_value") is not None else "—"])
    print_table("Experiment: purchases per search (the experiment's own results)",
                ["variant", "searches", "with click", "ctr", "with purchase", "purchases/search", "95% CI",
                 "p (vs control)"], rows)
    print_table("Offline nDCG@10 of the hidden relevance (every query, ideal over 50 candidates)",
                ["ranking", "nDCG@10", "ratio to control"],
                [["hybrid (control)", f"{before[0]:.4f}", "1.00"],
                 ["feedback ranker", f"{before[1]:.4f}", f"{before[1] / before[0]:.2f}"]])
    control, ranker = results["variants"]
    print(f"searches per arm the observed purchases/search difference needs (5% two-sided, 80% power): "
          f"{searches_per_arm(control['purchase_rate'], ranker['purchase_rate']):,.0f}")
    print(f"training: {trained['training_lists']} labelled lists of {trained['lists']} logged; "
          f"whole run {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
