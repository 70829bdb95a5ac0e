"""SQL tables created on first use, surviving another worker creating them at the same moment."""
from __future__ import annotations

import threading
import time
from typing import Callable

from sqlalchemy import MetaData
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

RETRY_AFTER_S = 0.5


def create_tables(create: Callable[[], None]) -> None:
    """Run `create` (a `create_all`). Another worker creating the same tables at the same moment can fail the
    first try (table exists, duplicate type, database locked); the second finds them. A database that is
    down fails at once."""
    try:
        create()
    except (IntegrityError, ProgrammingError, OperationalError) as exc:
        if isinstance(exc, OperationalError) and not any(m in str(exc) for m in ("already exists", "locked")):
            raise  # the database is down: no second wait
        time.sleep(RETRY_AFTER_S)
        create()


class LazyTables:
    """`metadata`'s tables, created on the first `ensure()` (the first database access of the store that owns
    them), not when the store is built: a request that needs no database must not fail because it is down."""

    def __init__(self, metadata: MetaData, engine: Engine):
        self.metadata = metadata
        self.engine = engine
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                create_tables(lambda: self.metadata.create_all(self.engine))
                self._ready = True
