"""The direct back end: the design this project replaces, kept as the
reference the benchmarks measure against (not one of the product's back
ends).

Every ``log()`` checks a connection out of the app's own pool, inserts its one
row and commits, in the caller's thread, which is what the original system
did: one transaction per record, and a request that logs while it already
holds a connection needs a second one. A failure (a pool timeout, the database
down) raises into the caller, as it did there; nothing is buffered, so there
is nothing to flush.

``use_direct_logger(app)`` gives an app of ``create_app()`` this back end;
``bench/app.py`` and ``bench/worker.py`` do so when ``BENCH_LOGGER=direct``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy.engine import Engine

from webapp.execlog import ExecutionLogger
from webapp.execlog.extension import EXTENSION_KEY, register_logger
from webapp.execlog.fields import CREATED_AT_US, ID
from webapp.execlog.forking import call_in_forked_children
from webapp.execlog.ids import MonotonicStamp, uuid7_hex
from webapp.execlog.record import LogRecord
from webapp.execlog.store import store_rows

#: The environment variable that asks bench/app.py and bench/worker.py for it.
ENVIRONMENT_KEY = "BENCH_LOGGER"


def use_direct_logger(app: Flask) -> ExecutionLogger:
    """Replace ``app``'s logger with one on a :class:`DirectWriter` of the
    app's own engine (its pool); the replaced logger is closed."""
    from webapp.extensions import db

    replaced = app.extensions[EXTENSION_KEY]
    with app.app_context():
        engine = db.engine
    logger = ExecutionLogger(DirectWriter(engine, store_rows), settings=replaced.settings,
                             limits=replaced.limits)
    replaced.close()
    app.extensions[EXTENSION_KEY] = logger
    register_logger(logger, default=True)
    return logger


class DirectWriter:
    """A logger back end that writes each record at once (see module doc)."""

    encodes_at_append = True

    def __init__(self, engine: Engine, store_rows: Callable[[Engine, list[Any]], Any]) -> None:
        self._store_rows = store_rows
        self.engine = engine
        self._reset()
        call_in_forked_children(self, DirectWriter._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._stamp = MonotonicStamp()
        self._written = 0

    def append(self, record: LogRecord) -> LogRecord:
        with self._lock:
            created_ns, counter = self._stamp.next()
        record[ID] = uuid7_hex(created_ns, counter)
        record[CREATED_AT_US] = created_ns // 1000
        self._store_rows(self.engine, [record.to_wire()])
        with self._lock:
            self._written += 1
        return record

    def start(self) -> None:
        """Nothing runs in the background."""

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        return {"buffered": 0, "in_flight": 0, "published": self._written}

    def status(self) -> dict[str, Any]:
        return self.stats()

    def replay(self) -> None:
        """There is no spool."""

    def dropped_for(self, trace_id: str, attempt: int | None) -> int:
        """Nothing is dropped: a failure raises into the caller."""
        return 0

    @property
    def spool_full(self) -> bool:
        """There is no spool."""
        return False
