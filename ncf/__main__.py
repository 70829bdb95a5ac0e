"""`python -m ncf train --source movielens --path DIR` trains on MovieLens files and writes a new versioned model
directory; `python -m ncf evaluate DIR` re-scores one trained on files. (The service trains on its event store
with `python -m app.ops.cli train`.)

Training evaluates NeuMF (and the baselines) on a leave-one-out split, then refits NeuMF on every
interaction for serving (`--no-refit`: serve the evaluation run's weights). NeuMF's items carry the movies'
genres (`--no-item-features`: ids only); `--attribute-shares` also weighs the user's shares of the item's
genres in NeuMF's logit: off by default for MovieLens, where they lowered validation NDCG@10.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .movielens import MOVIELENS_DEFAULTS, load_source, movielens_features, movielens_source
from .run import add_train_options, evaluate_model_dir, train, train_config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            print(train_movielens(args))
        else:
            print(json.dumps(evaluate_model_dir(Path(args.model_dir), load_source), indent=2))
    except ValueError as exc:  # bad data or settings: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ncf", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train NeuMF and the baselines, write a model directory")
    train_parser.add_argument("--source", choices=("movielens",), required=True,
                              help="the files to train on (the service's events: python -m app.ops.cli train)")
    train_parser.add_argument("--path", type=Path, required=True, help="MovieLens directory holding ratings.csv")
    add_train_options(train_parser)
    evaluate_parser = commands.add_parser("evaluate", help="re-evaluate a saved model on its split, print JSON")
    evaluate_parser.add_argument("model_dir")
    return parser


def train_movielens(args: argparse.Namespace) -> Path:
    config = train_config(args, MOVIELENS_DEFAULTS)
    interactions, source = movielens_source(args.path)
    features = movielens_features(source, interactions) if config.item_features else None
    return train(interactions, source, config, features, args.out or default_models_root())


def default_models_root() -> Path:
    """$DATA_DIR/models, as the service serves them (DATA_DIR's default: data)."""
    return Path(os.environ.get("DATA_DIR", "data")) / "models"


if __name__ == "__main__":
    sys.exit(main())
