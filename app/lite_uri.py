"""MILVUS_URI may name a Milvus Lite file (`./store.db`, as pymilvus documents for MilvusClient).

pymilvus parses that variable as a server address when it is imported, and a file path there makes the import
fail. `import_pymilvus` imports it with the variable hidden (the settings still read it); `app/__init__.py` calls
it before any other module imports pymilvus.
"""
from __future__ import annotations

import os
from pathlib import Path


def is_lite_file(uri: str) -> bool:
    """A local Milvus Lite file rather than a server address (http://, https://, tcp://, unix:...)."""
    return bool(uri) and "://" not in uri and not uri.startswith("unix:")


def import_pymilvus() -> None:
    uri = os.environ.get("MILVUS_URI", "")
    if not is_lite_file(uri):
        return
    del os.environ["MILVUS_URI"]
    try:
        import pymilvus  # noqa: F401
    finally:
        os.environ["MILVUS_URI"] = uri


def lite_file(uri: str) -> Path | None:
    """The Lite file a resolved MILVUS_URI names, if it names one."""
    return Path(uri).expanduser().resolve() if is_lite_file(uri) else None
