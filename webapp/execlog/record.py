"""The object ``log()`` returns: a record, which is its own wire row.

A record is a list of its fields in :data:`~.fields.FIELDS` order: the flusher
encodes the list itself (:mod:`.wire`) and the worker receives the same list.
``log()`` fills every field but the first two with checked, cleaned values
(:mod:`.normalise`); the buffer stamps ``id`` and ``created_at_us`` when it
takes the record, and claims the stamp under its lock, so that ids follow
buffer order.

With ``EXECLOG_DURABILITY=disk`` (the default) the buffer also encodes the
record there, and that encoding is its snapshot: later changes to the
caller's ``details``, at any depth, do not reach it. With ``memory``,
``details`` holds a copy (one level deep) of what the caller passed: like
the standard library's ``logging``, nested objects are read when the record
is shipped, and turned into JSON then. Either way, with repairs only where a
cheap check says they are needed.
"""

from __future__ import annotations

from datetime import datetime
from operator import itemgetter
from typing import Any

from .fields import (
    CATEGORY, CREATED_AT_US, DEFAULT_LIMITS, DETAILS, FIELDS, ID, LEVEL, MESSAGE, TRACE_ID, Limits,
    created_at_of,
)
from .ids import format_hex_uuid
from .wire import decode_row, encode_record


class LogRecord(list):  # type: ignore[type-arg]
    """A buffered log record (read it, do not change it).

    Its attributes are its fields by name (``record.message``, ``record.step``,
    ...), plus ``id`` in the canonical UUID form, ``created_at`` as a datetime
    and ``details`` as it is stored (repaired and size-limited). Made by
    :func:`new_record`: a list's own constructor is the fast way, and an
    ``__init__`` written in Python would triple what making one costs.
    """

    #: ``limits``: the size limits it is encoded with; ``encoded``: its wire
    #: form once the flusher encoded it; ``journal_entry`` and ``journal_at``:
    #: the segment and offset where ``EXECLOG_DURABILITY=disk`` wrote that
    #: form at ``log()`` (the flusher reads it back from there: a copy of it
    #: held by every buffered record would cost memory, and pages faulted in).
    __slots__ = ("limits", "encoded", "journal_entry", "journal_at")

    @property
    def id(self) -> str:
        return format_hex_uuid(self[ID])

    @property
    def created_at(self) -> datetime:
        return created_at_of(self[CREATED_AT_US])

    @property
    def details(self) -> dict[str, Any] | None:
        """``details`` as it is stored: repaired and size-limited JSON."""
        return decode_row(self.wire_bytes())[DETAILS]

    def wire_bytes(self) -> bytes:
        """The record's wire row, encoded (once)."""
        if self.encoded is None:
            journaled = None if self.journal_entry is None else self.journal_entry.line_at(self.journal_at)
            self.encoded = journaled or encode_record(self, self.limits)
        return self.encoded

    def to_wire(self) -> list[Any]:
        """The wire row as the worker receives it (decoded)."""
        return decode_row(self.wire_bytes())

    def to_dict(self) -> dict[str, Any]:
        row = self.to_wire()
        values = {f.name: row[i] for i, f in enumerate(FIELDS)}
        del values["created_at_us"]
        values["id"] = self.id
        values["created_at"] = self.created_at.isoformat()
        return values

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self[ID])

    def __repr__(self) -> str:
        return (
            f"<LogRecord {self.id} {self[LEVEL]}/{self[CATEGORY]} "
            f"trace={self[TRACE_ID]!r} {str(self[MESSAGE])[:40]!r}>"
        )


def new_record(values: Any, limits: Limits = DEFAULT_LIMITS) -> LogRecord:
    """A record of ``values`` (in :data:`~.fields.FIELDS` order), not yet encoded."""
    record = LogRecord(values)
    record.limits = limits
    record.encoded = None
    record.journal_entry = None
    return record


def _field_property(index: int, name: str) -> property:
    return property(itemgetter(index), doc=f"The record's ``{name}``.")


# The other fields read as they are: log() stored them checked and cleaned.
for _index, _field in enumerate(FIELDS):
    if not hasattr(LogRecord, _field.name):
        setattr(LogRecord, _field.name, _field_property(_index, _field.name))
del _index, _field
