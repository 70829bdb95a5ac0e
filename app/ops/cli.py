"""Operations: `python -m app.ops.cli init-db | rebuild-user-vectors | apply-pending-vectors | rebuild-dense-index |
export-encoder | rebuild-collection | evaluate-recommendations | train | evaluate-model | train-ranker`."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from app.config.settings import Settings
from app.core import training_data
from app.core.embedding import load_encoder
from app.core.ranker import train_served
from app.core.resources import Resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.ops.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init-db", help="create the event tables and the Milvus collections if missing")
    commands.add_parser("rebuild-user-vectors", help="recompute every user vector from the event log")
    commands.add_parser("apply-pending-vectors", help="apply user-vector updates deferred while Milvus was down")
    commands.add_parser("rebuild-dense-index", help="replace the products' dense index by INDEX_TYPE's")
    commands.add_parser("export-encoder", help="make the encoder's cached ONNX export now (`make install` does)")
    commands.add_parser("rebuild-collection", help="copy the products (no re-embedding) into a collection with "
                        "today's schema and TEXT_ANALYZER, then serve it")
    evaluation = commands.add_parser("evaluate-recommendations",
                                     help="leave-last-out replay of every strategy through the served recommender")
    evaluation.add_argument("--split", choices=("validation", "test"), default="validation",
                            help="validation (second-to-last item, for choosing defaults) or test (last item)")
    evaluation.add_argument("--movielens", type=Path, metavar="DIR",
                            help="replay MovieLens ratings.csv (default: the event store's events)")
    evaluation.add_argument("--users", type=int, help="evaluate a fixed random sample of this many held-out users")
    evaluation.add_argument("--tune", action="store_true", help="also choose blend weights on this split")
    evaluation.add_argument("--workdir", type=Path, help="scratch stores (default: DATA_DIR/evaluation)")
    evaluation.add_argument("--epochs", type=int, help="NCF epochs (default: the trainer's)")
    evaluation.add_argument("--threads", type=int, default=1,
                            help="torch threads for training (default 1: on a shared machine more spin-wait)")
    evaluation.add_argument("--reuse", action="store_true",
                            help="reuse the stores and model a run of the same split left in --workdir")
    evaluation.add_argument("--out", type=Path, help="write the results as JSON")
    training_data.add_commands(commands, Settings.from_env().training_device)
    commands.add_parser("train-ranker", help="train the search ranker on the logged searches, write a new version "
                        "under MODELS_DIR/ranker")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = Resources(Settings.from_env())
    if args.command in ("train", "evaluate-model"):
        return _train_or_evaluate(args, res.settings)
    if args.command == "init-db":
        res.events.init_schema()
        res.products.ensure_collection()
        res.users.ensure_collection()
        print(f"ready: {res.settings.public_database_url}, {res.settings.public_milvus_uri}")
    elif args.command == "rebuild-user-vectors":
        print(f"rebuilt {res.ingestor.rebuild()} user vectors")
    elif args.command == "export-encoder":
        encoder = load_encoder(res.settings)
        settings = res.settings
        print(f"encoder ready: {settings.embedding_model} ({settings.embedding_backend}, {encoder.dimension}-d)")
    elif args.command == "rebuild-collection":
        old, new, copied = res.products.rebuild_collection(on_batch=lambda n: print(f"copied {n}", flush=True))
        print(f"{copied} products copied from {old!r} to {new!r}, which now serves "
              f"{res.settings.products_collection!r} (running services switch within COLLECTION_CHECK_SECONDS); "
              f"{old!r} is kept: drop it when unused")
    elif args.command == "evaluate-recommendations":
        from ncf.train import TrainConfig

        from app.core.evaluation import run

        config = TrainConfig(progress=False, threads=args.threads, **training_data.served_item_source(res.settings),
                             **({"epochs": args.epochs} if args.epochs else {}))
        run(res, args.split, args.movielens, args.users, args.tune,
            args.workdir or res.settings.data_dir / "evaluation", config, args.out, args.reuse)
    elif args.command == "train-ranker":
        print(json.dumps(train_served(res), indent=2))
    elif args.command == "rebuild-dense-index":
        print(f"the dense index of {res.settings.products_collection!r} is {res.products.rebuild_dense_index()}")
    else:
        print(f"applied {res.ingestor.apply_all_pending()} pending events")
    return 0


def _train_or_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.command == "train":
            print(training_data.train_on_events(args, settings))
        else:
            print(json.dumps(training_data.evaluate_model(args.model_dir, settings, args.database_url), indent=2))
    except ValueError as exc:  # bad data or settings: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
