"""Seed the store: `python -m seed products|catalog|movielens ...` (see README)."""
from __future__ import annotations

import argparse
import copy
import logging
import os
import sys

from app.settings import Settings

from .importers import PRESETS, parse_mapping, read_catalog, read_movielens
from .loader import seed_products
from .mock_catalog import generate_products


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seed", description=__doc__)
    parser.add_argument("--resume", action="store_true", help="skip products already stored (no re-embedding)")
    parser.add_argument("--batch-size", type=int, default=256)
    commands = parser.add_subparsers(dest="command", required=True)

    products = commands.add_parser("products", help="a realistic mock catalogue, deterministic for a seed")
    products.add_argument("--count", type=int, default=2000)
    products.add_argument("--seed", type=int, default=42)

    catalog = commands.add_parser("catalog", help="a real catalogue from a CSV or JSONL file")
    catalog.add_argument("file")
    catalog.add_argument("--mapping", default="", help="field=column[+column],... e.g. product_id=book_id,name=title")
    catalog.add_argument("--preset", choices=sorted(PRESETS), help="a known file's mapping")

    movielens = commands.add_parser("movielens", help="MovieLens movies.csv (+ tags.csv) as a catalogue")
    movielens.add_argument("dir")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings.from_env()

    total = None
    if args.command == "products":
        records = generate_products(args.count, seed=args.seed)
        total = args.count
    elif args.command == "catalog":
        options = copy.deepcopy(PRESETS[args.preset]) if args.preset else {}
        options["mapping"] = {**options.get("mapping", {}), **(parse_mapping(args.mapping) if args.mapping else {})}
        records = read_catalog(args.file, **options)
    else:
        records = read_movielens(args.dir)

    report = seed_products(records, settings, total=total, resume=args.resume, batch_size=args.batch_size)
    print(
        f"written={report.written} already_stored={report.already_stored} invalid={report.invalid} "
        f"store={settings.public_milvus_uri}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
