"""The fields of a log record, defined once.

A record travels as a JSON array of these fields, in this order (its wire
row), and is stored in the ``execution_logs`` columns of the same names
(``created_at_us`` in ``created_at``). Whatever else needs the fields (the
record's attributes, the COPY column list, the staging table, the worker's
checks) is derived from :data:`FIELDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


@dataclass(frozen=True)
class Field:
    """One field of a record, as it travels and as it is stored."""

    name: str
    #: What a valid value is: one of the kinds :mod:`.wire` checks.
    kind: str
    #: The column of ``execution_logs`` it is stored in, if not its name.
    column: str = ""

    @property
    def column_name(self) -> str:
        return self.column or self.name


#: The fields of a record, in wire (and list) order.
FIELDS: tuple[Field, ...] = (
    Field("id", "id"),  # the 32 hex digits of a UUIDv7 (see .ids)
    Field("created_at_us", "time", column="created_at"),  # microseconds since the epoch, UTC
    Field("trace_id", "identifier"),
    Field("level", "level"),
    Field("category", "category"),
    Field("message", "text"),
    Field("step", "optional_identifier"),
    Field("agent_name", "optional_identifier"),
    Field("roadmap_id", "optional_identifier"),
    Field("concept_id", "optional_identifier"),
    Field("details", "details"),  # a JSON object, or null
    Field("duration_ms", "duration"),
    Field("attempt", "attempt"),  # the run of the execution that logged it, or null
)


def position(name: str) -> int:
    """Where the field ``name`` is in a record."""
    for index, field in enumerate(FIELDS):
        if field.name == name:
            return index
    raise KeyError(name)


ID = position("id")
CREATED_AT_US = position("created_at_us")
TRACE_ID = position("trace_id")
LEVEL = position("level")
CATEGORY = position("category")
MESSAGE = position("message")
DETAILS = position("details")
ATTEMPT = position("attempt")

#: Where the text fields are (what NUL and lone surrogates are cleaned from).
TEXT_POSITIONS = tuple(i for i, f in enumerate(FIELDS)
                       if f.kind in ("identifier", "text", "optional_identifier"))
#: The columns of ``execution_logs``, in wire order.
COLUMNS: tuple[str, ...] = tuple(f.column_name for f in FIELDS)

#: Identifiers (trace_id, step, agent_name, ...) are kept whole or refused.
MAX_IDENTIFIER_CHARS = 255
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Limits:
    """Size limits applied to every record (from ``EXECLOG_MAX_*``)."""

    max_message_chars: int = 32_768
    max_details_chars: int = 65_536


DEFAULT_LIMITS = Limits()


def created_at_of(created_at_us: int) -> datetime:
    """The aware UTC datetime of a record's microseconds."""
    return EPOCH + timedelta(microseconds=created_at_us)
