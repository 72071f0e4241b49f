"""``EXECLOG_BACKEND=direct``: the design this project replaces, kept as the
reference the benchmarks measure against.

Every ``log()`` checks a connection out of the app's own pool, inserts its one
row and commits, in the caller's thread, which is what the original system
did: one transaction per record, and a request that logs while it already
holds a connection needs a second one. A failure (a pool timeout, the database
down) raises into the caller, as it did there; nothing is buffered, so there
is nothing to flush.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from .fields import CREATED_AT_US, ID
from .forking import call_in_forked_children
from .ids import MonotonicStamp, uuid7_hex
from .record import LogRecord


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

    def dropped_for(self, trace_id: str, attempt: int | None) -> int:
        """Nothing is dropped: a failure raises into the caller."""
        return 0

    @property
    def spool_full(self) -> bool:
        """There is no spool."""
        return False
