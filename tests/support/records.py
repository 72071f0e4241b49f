"""Real wire rows made the way the logger makes them, without a logger."""

from __future__ import annotations

from typing import Any

from webapp.execlog.ids import MonotonicStamp
from webapp.execlog.record import LogRecord


def make_rows(trace_id: str, count: int, message: str = "spooled") -> list[list[Any]]:
    stamp = MonotonicStamp()
    return [
        LogRecord(*stamp.next(), trace_id, "info", "agent", f"{message} {i}").to_wire()
        for i in range(count)
    ]
