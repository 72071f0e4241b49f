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
from typing import Any

from sqlalchemy.engine import Engine

from .forking import call_in_forked_children
from .ids import MonotonicStamp
from .record import Limits, LogRecord


class DirectWriter:
    """A logger back end that writes each record at once (see module doc)."""

    def __init__(self, engine: Engine, *, limits: Limits | None = None) -> None:
        from .store import store_rows  # the models import the extensions, which import us

        self._store_rows = store_rows
        self.engine = engine
        self.limits = limits or Limits()
        self._reset()
        call_in_forked_children(self, DirectWriter._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._stamp = MonotonicStamp()
        self._written = 0

    def append(
        self,
        trace_id: str,
        level: str,
        category: str,
        message: Any,
        step: str | None,
        agent_name: str | None,
        roadmap_id: str | None,
        concept_id: str | None,
        details: Any,
        duration_ms: float | None,
    ) -> LogRecord:
        with self._lock:
            created_ns, counter = self._stamp.next()
        record = LogRecord(created_ns, counter, trace_id, level, category, message, step, agent_name,
                           roadmap_id, concept_id, details, duration_ms, self.limits)
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
