"""Operations: `python -m app.cli init-db | rebuild-user-vectors | apply-pending-vectors | rebuild-dense-index |
export-encoder | rebuild-collection`."""
from __future__ import annotations

import argparse
import os
import sys

from .embedding import load_encoder
from .resources import Resources
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init-db", help="create the event tables and the Milvus collections if missing")
    commands.add_parser("rebuild-user-vectors", help="recompute every user vector from the event log")
    commands.add_parser("apply-pending-vectors", help="apply user-vector updates deferred while Milvus was down")
    commands.add_parser("rebuild-dense-index", help="replace the products' dense index by INDEX_TYPE's")
    commands.add_parser("export-encoder", help="make the encoder's cached ONNX export now (`make install` does)")
    commands.add_parser("rebuild-collection", help="copy the products (no re-embedding) into a collection with "
                        "today's schema and TEXT_ANALYZER, then serve it")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = Resources(Settings.from_env())
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
    elif args.command == "rebuild-dense-index":
        print(f"the dense index of {res.settings.products_collection!r} is {res.products.rebuild_dense_index()}")
    else:
        print(f"applied {res.ingestor.apply_all_pending()} pending events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
