"""Failing fast when a dependency is down, and recognising such failures.

pymilvus waits without limit for a call that has no timeout of its own (a hung server hangs the request),
and retries a call that fails to connect. `GuardedMilvusClient` gives every call a deadline (MILVUS_TIMEOUT)
and, once a call has found Milvus unreachable, refuses calls at once for FAIL_FAST_SECONDS instead of letting
each request wait for its own timeout; the first call after that tries again.
"""
from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from typing import Callable

import grpc
from pymilvus import MilvusClient, MilvusException
from pymilvus.client.types import Status
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

FAIL_FAST_SECONDS = 5.0
UNAVAILABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Calls whose duration grows with the collection (persisting, indexing, loading): no deadline, only the breaker.
UNBOUNDED_CALLS = frozenset({"flush", "create_index", "drop_index", "load_collection", "release_collection"})


class StoreUnavailable(Exception):
    """Milvus did not answer: unreachable, or no answer within MILVUS_TIMEOUT."""


def unavailable_dependency(exc: BaseException) -> str | None:
    """"milvus" or "database" when `exc` (or an exception it was raised from) says that dependency did not
    answer; None for any other error."""
    seen = set()
    while exc is not None and id(exc) not in seen:  # pymilvus raises errors `from` themselves
        seen.add(id(exc))
        if isinstance(exc, StoreUnavailable):
            return "milvus"
        if isinstance(exc, grpc.RpcError) and exc.code() in UNAVAILABLE_CODES:
            return "milvus"
        if isinstance(exc, MilvusException) and exc.code in (Status.CONNECT_FAILED, *UNAVAILABLE_CODES):
            return "milvus"
        if isinstance(exc, OperationalError):  # refused connection, unopenable or read-only SQLite file
            return "database"
        exc = exc.__cause__
    return None


class GuardedMilvusClient:
    """A MilvusClient, connected on first use, whose calls have a deadline and fail fast while Milvus is down.

    A call that finds Milvus unreachable raises StoreUnavailable (from the client's error); other errors
    pass through unchanged.
    """

    def __init__(self, connect: Callable[[], MilvusClient], timeout: float,
                 fail_fast_seconds: float = FAIL_FAST_SECONDS):
        self._connect = connect
        self.timeout = timeout
        self.fail_fast_seconds = fail_fast_seconds
        self._client: MilvusClient | None = None
        self._connect_lock = threading.Lock()
        self._down_until = 0.0  # time.monotonic() before which calls are refused

    def __getattr__(self, name: str):
        """The client's method `name`, guarded (attributes that are not methods are not proxied)."""
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            self._refuse_while_down()
            try:
                method = getattr(self._connected(), name)
                if name not in UNBOUNDED_CALLS and _accepts_timeout(name):
                    kwargs.setdefault("timeout", self.timeout)
                return method(*args, **kwargs)
            except Exception as exc:
                if unavailable_dependency(exc) != "milvus" or isinstance(exc, StoreUnavailable):
                    raise
                self._down_until = time.monotonic() + self.fail_fast_seconds
                log.warning("Milvus unreachable (%s): calls fail fast for %.0f s", summary(exc),
                            self.fail_fast_seconds)
                raise StoreUnavailable(f"Milvus unreachable: {summary(exc)}") from exc

        return call

    def _refuse_while_down(self) -> None:
        remaining = self._down_until - time.monotonic()
        if remaining > 0:
            raise StoreUnavailable(f"Milvus unreachable; next attempt in {remaining:.1f} s")

    def close(self) -> None:
        """Close the connection if one was made (a later call connects again)."""
        with self._connect_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connected(self) -> MilvusClient:
        with self._connect_lock:
            if self._client is None:
                self._refuse_while_down()  # another thread's attempt to connect has just failed
                self._client = self._connect()
            return self._client


@functools.cache
def _accepts_timeout(name: str) -> bool:
    parameters = inspect.signature(getattr(MilvusClient, name)).parameters.values()
    return any(p.name == "timeout" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def summary(exc: BaseException) -> str:
    """The exception's type and first line, for a log line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
