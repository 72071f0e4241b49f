"""Real records and wire rows, made the way the logger makes them, without a logger."""

from __future__ import annotations

from typing import Any

from webapp.execlog.fields import FIELDS
from webapp.execlog.ids import MonotonicStamp, uuid7_hex
from webapp.execlog.record import LogRecord, new_record


def make_record(trace_id: str, level: str, category: str, message: str, *,
                stamp: MonotonicStamp | None = None, created_ns: int | None = None,
                counter: int | None = None, **fields: Any) -> LogRecord:
    """A stamped record; ``fields`` are the other fields by name."""
    if created_ns is None or counter is None:
        created_ns, counter = (stamp or MonotonicStamp()).next()
    values: dict[str, Any] = dict.fromkeys(f.name for f in FIELDS)
    values.update(fields, trace_id=trace_id, level=level, category=category, message=message,
                  id=uuid7_hex(created_ns, counter), created_at_us=created_ns // 1000)
    return new_record([values[f.name] for f in FIELDS])


def make_rows(trace_id: str, count: int, message: str = "spooled", **fields: Any) -> list[list[Any]]:
    """``count`` wire rows of one trace, as the worker receives them."""
    stamp = MonotonicStamp()
    return [make_record(trace_id, "info", "agent", f"{message} {i}", stamp=stamp, **fields).to_wire()
            for i in range(count)]
