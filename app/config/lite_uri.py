"""Importing pymilvus (and gRPC) the way this project needs, before any other module does (`app/__init__.py`).

- MILVUS_URI may name a Milvus Lite file (`./store.db`, as pymilvus documents for MilvusClient). pymilvus
  parses that variable as a server address when it is imported, and a file path there makes the import fail:
  it is imported with the variable hidden (the settings still read it).
- gRPC's fork support is turned off (GRPC_ENABLE_FORK_SUPPORT=0, unless set): with it, a process that has used
  a gRPC channel and then starts a subprocess (the launcher its steps, a worker its trainer) sometimes loses
  the child before it runs, to SIGABRT after `epoll_wait error: Bad file descriptor` (6 of 100 spawns here,
  0 of 160 without it; grpc/grpc#43055). Processes of this project fork only to exec, which needs no support.
"""
from __future__ import annotations

import os
from pathlib import Path


def is_lite_file(uri: str) -> bool:
    """A local Milvus Lite file rather than a server address (http://, https://, tcp://, unix:...)."""
    return bool(uri) and "://" not in uri and not uri.startswith("unix:")


def import_pymilvus() -> None:
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
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
