"""Seed the stores: `python -m seed products|catalog|movielens|interactions ...` (see README)."""
from __future__ import annotations

import argparse
import copy
import gc
import logging
import os
import sys

from app.config.settings import Settings
from app.core.resources import Resources

from .importers import PRESETS, count_rows, parse_mapping, read_catalog, read_movielens
from .interactions import generate_interactions, read_movielens_ratings, write_events_csv
from .loader import SeedReport, catalogue_products, seed_events, seed_products
from .mock_catalog import generate_products


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seed", description=__doc__)
    parser.add_argument("--resume", action="store_true", help="skip products already stored (no re-embedding)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="encoder threads (default: every core this process may use)")
    commands = parser.add_subparsers(dest="command", required=True)

    products = commands.add_parser("products", help="a realistic mock catalogue, deterministic for a seed")
    products.add_argument("--count", type=int, default=2000)
    products.add_argument("--seed", type=int, default=42)

    catalog = commands.add_parser("catalog", help="a real catalogue from a CSV or JSONL file")
    catalog.add_argument("file")
    catalog.add_argument("--mapping", default="", help="field=column[+column],... e.g. product_id=book_id,name=title")
    catalog.add_argument("--preset", choices=sorted(PRESETS), help="a known file's mapping")

    movielens = commands.add_parser("movielens", help="MovieLens movies as a catalogue, its ratings as events")
    movielens.add_argument("dir")
    movielens.add_argument("--no-ratings", action="store_true", help="import the catalogue only")

    interactions = commands.add_parser("interactions", help="mock behaviour of users over the stored catalogue")
    interactions.add_argument("--users", type=int, default=5000)
    interactions.add_argument("--min", type=int, default=15, dest="min_events")
    interactions.add_argument("--max", type=int, default=100, dest="max_events")
    interactions.add_argument("--days", type=int, default=90)
    interactions.add_argument("--seed", type=int, default=42)
    interactions.add_argument("--export", metavar="CSV", help="also write the generated events to this CSV file")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = Resources(Settings.from_env(torch_threads=args.threads))
    try:
        return run(args, res)
    finally:
        res.close()
        # The interpreter's collections over the large heap (torch, onnxruntime, transformers) at exit took 1.5-3.5
        # s, on the first run's path: everything is closed, nothing is left to collect.
        gc.freeze()


def run(args: argparse.Namespace, res: Resources) -> int:
    """The seeding command `args.command` into `res`'s stores."""
    if args.command == "interactions":
        events = list(generate_interactions(
            catalogue_products(res.products), args.users, args.min_events, args.max_events, args.days, args.seed,
        ))
        if args.export:
            write_events_csv(events, args.export)
        _print_report("events", seed_events(events, res, total=len(events)), res)
        return 0
    total = None
    if args.command == "products":
        records = generate_products(args.count, seed=args.seed)
        total = args.count
    elif args.command == "catalog":
        options = copy.deepcopy(PRESETS[args.preset]) if args.preset else {}
        options["mapping"] = {**options.get("mapping", {}), **(parse_mapping(args.mapping) if args.mapping else {})}
        records = read_catalog(args.file, **options)
        total = count_rows(args.file)
    else:
        records = read_movielens(args.dir)
        total = count_rows(os.path.join(args.dir, "movies.csv"))
    _print_report("products", seed_products(records, res, total, args.resume, args.batch_size), res)
    if args.command == "movielens" and not args.no_ratings:
        ratings = os.path.join(args.dir, "ratings.csv")
        _print_report("events", seed_events(read_movielens_ratings(args.dir), res, count_rows(ratings)), res)
    return 0


def _print_report(kind: str, report: SeedReport, res: Resources) -> None:
    print(f"{kind}: written={report.written} already_stored={report.already_stored} invalid={report.invalid} "
          f"store={res.settings.public_milvus_uri}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
