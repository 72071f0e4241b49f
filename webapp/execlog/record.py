"""One log record: validation, normalisation, size limits and its wire form.

What must fail in the caller's thread fails in ``log()``: an unknown level or
category, a missing trace_id or message, or an identifier longer than
:data:`MAX_IDENTIFIER_CHARS` (cutting it would merge two traces) raise
``ValueError`` naming the field.

Everything else a record needs to survive PostgreSQL is repaired, never
refused, when the record is first turned into its wire row (normally in the
flusher thread, off the request's path), so a record that left the producer
can be inserted as it is:

* NUL characters (PostgreSQL rejects them in text and JSON) and lone UTF-16
  surrogates (not encodable as UTF-8) are replaced by U+FFFD; bytes are
  decoded as UTF-8 with replacement;
* ``details`` becomes JSON text: values JSON has no type for become strings,
  NaN and the infinities become the strings ``"NaN"``, ``"Infinity"`` and
  ``"-Infinity"``, cycles are replaced by a marker string, nesting too deep
  to encode (beyond Python's recursion limit, about 1,000 levels, which
  PostgreSQL still accepts) is cut at :data:`MAX_DETAILS_DEPTH` levels with
  a marker, and a non-dict value is wrapped as ``{"value": ...}``;
* a message or a ``details`` text over its configured size is truncated with a
  marker that says how much was cut.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from .constants import LogCategory, LogLevel
from .ids import format_uuid, uuid7_int

MAX_IDENTIFIER_CHARS = 255
MAX_DETAILS_DEPTH = 32
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: Version of the row layout carried in Celery messages and spool files.
WIRE_VERSION = 1
#: The order of the fields in a wire row (a JSON array: compact to send).
WIRE_FIELDS = (
    "id",
    "created_at_us",
    "trace_id",
    "level",
    "category",
    "message",
    "step",
    "agent_name",
    "roadmap_id",
    "concept_id",
    "details",
    "duration_ms",
)

#: The columns of ``execution_logs`` in wire order (what parse_wire_row returns).
COLUMNS = tuple("created_at" if name == "created_at_us" else name for name in WIRE_FIELDS)

_LEVELS = {level.value: level.value for level in LogLevel}
_CATEGORIES = {category.value: category.value for category in LogCategory}
_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    """Size limits applied to every record (from ``EXECLOG_MAX_*``)."""

    max_message_chars: int = 32_768
    max_details_chars: int = 65_536


class LogRecord:
    """A buffered log record: what ``log()`` returns.

    ``log()`` only checks what must fail in the caller's thread (required
    fields, levels, categories, identifier lengths) and keeps the raw values;
    the costly part of normalisation (text cleaning, truncation, the JSON of
    ``details``, the id's text form) runs once, on first use, normally in the
    flusher thread when the record is shipped. Every public attribute shows
    the normalised value.

    ``details`` is copied (one level deep) at ``log()`` time; like the standard
    library's ``logging``, nested objects are read when the record is shipped.
    """

    __slots__ = (
        "created_ns",
        "counter",
        "_trace_id",
        "level",
        "category",
        "_message",
        "_step",
        "_agent_name",
        "_roadmap_id",
        "_concept_id",
        "_details",
        "duration_ms",
        "_limits",
        "_wire",
        "journal_entry",
    )

    def __init__(
        self,
        created_ns: int,
        counter: int,
        trace_id: Any,
        level: str,
        category: str,
        message: Any,
        step: Any = None,
        agent_name: Any = None,
        roadmap_id: Any = None,
        concept_id: Any = None,
        details: Any = None,
        duration_ms: float | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.created_ns = created_ns
        self.counter = counter
        self._trace_id = trace_id
        self.level = level
        self.category = category
        self._message = message
        self._step = step
        self._agent_name = agent_name
        self._roadmap_id = roadmap_id
        self._concept_id = concept_id
        self._details = details
        self.duration_ms = duration_ms
        self._limits = limits or DEFAULT_LIMITS
        self._wire: list[Any] | None = None
        #: Where ``EXECLOG_DURABILITY=disk`` wrote it (see spool.SpoolJournal).
        self.journal_entry: Any = None

    def to_wire(self) -> list[Any]:
        """The normalised row, in :data:`WIRE_FIELDS` order (computed once)."""
        wire = self._wire
        if wire is None:
            limits = self._limits
            wire = self._wire = [
                "%032x" % uuid7_int(self.created_ns, self.counter),
                self.created_ns // 1000,
                clean_text(self._trace_id),
                self.level,
                self.category,
                normalise_message(self._message, limits.max_message_chars),
                _clean_optional(self._step),
                _clean_optional(self._agent_name),
                _clean_optional(self._roadmap_id),
                _clean_optional(self._concept_id),
                normalise_details(self._details, limits.max_details_chars),
                self.duration_ms,
            ]
        return wire

    @property
    def id(self) -> str:
        return format_uuid(uuid7_int(self.created_ns, self.counter))

    @property
    def created_at_us(self) -> int:
        """Event time in microseconds since the Unix epoch (UTC)."""
        return self.created_ns // 1000

    @property
    def trace_id(self) -> str:
        return self.to_wire()[2]

    @property
    def message(self) -> str:
        return self.to_wire()[5]

    @property
    def step(self) -> str | None:
        return self.to_wire()[6]

    @property
    def agent_name(self) -> str | None:
        return self.to_wire()[7]

    @property
    def roadmap_id(self) -> str | None:
        return self.to_wire()[8]

    @property
    def concept_id(self) -> str | None:
        return self.to_wire()[9]

    @property
    def details_json(self) -> str | None:
        return self.to_wire()[10]

    @property
    def details(self) -> dict[str, Any] | None:
        text = self.details_json
        return None if text is None else json.loads(text)

    @property
    def created_at(self) -> datetime:
        return created_at_of(self.created_at_us)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "level": self.level,
            "category": self.category,
            "message": self.message,
            "step": self.step,
            "agent_name": self.agent_name,
            "roadmap_id": self.roadmap_id,
            "concept_id": self.concept_id,
            "details": self.details,
            "duration_ms": self.duration_ms,
            "created_at": self.created_at.isoformat(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogRecord):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    def __hash__(self) -> int:
        return hash((self.created_ns, self.counter))

    def __repr__(self) -> str:
        return (
            f"<LogRecord {self.id} {self.level}/{self.category} "
            f"trace={self.trace_id!r} {self.message[:40]!r}>"
        )


DEFAULT_LIMITS = Limits()


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


# -- normalisation -----------------------------------------------------------


def clean_text(text: str) -> str:
    """Replace what PostgreSQL cannot store in text: NUL and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATES.sub("\ufffd", text)
    return text


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to ``max_chars`` characters and say so at the end."""
    if len(text) <= max_chars:
        return text
    cut = len(text) - max_chars
    return f"{text[:max_chars]}... [truncated {cut} characters]"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def normalise_level(level: Any) -> str:
    found = _LEVELS.get(level)
    if found is not None:
        return found
    try:
        return _LEVELS[_as_text(level).lower()]
    except KeyError:
        raise ValueError(
            f"level must be one of {sorted(_LEVELS)}, got {level!r}"
        ) from None


def normalise_category(category: Any) -> str:
    found = _CATEGORIES.get(category)
    if found is not None:
        return found
    try:
        return _CATEGORIES[_as_text(category).lower()]
    except KeyError:
        raise ValueError(
            f"category must be one of {sorted(_CATEGORIES)}, got {category!r}"
        ) from None


def check_identifier(value: Any, field: str, *, required: bool = False) -> str | None:
    """An id-like field (trace_id, step, agent_name, ...): kept whole or refused.

    Runs in ``log()``; the cheap common case is a short ``str``.
    """
    if value.__class__ is str and 0 < len(value) <= MAX_IDENTIFIER_CHARS:
        return value
    if value is None or value == "":
        if required:
            raise ValueError(f"{field} is required")
        return None
    text = _as_text(value)
    if len(text) > MAX_IDENTIFIER_CHARS:
        raise ValueError(
            f"{field} is {len(text)} characters long; the limit is {MAX_IDENTIFIER_CHARS}"
        )
    return text


def check_message(message: Any) -> Any:
    """Refuse a missing message; the rest of its normalisation is deferred."""
    if message is None or message == "" or message == b"":
        raise ValueError("message is required")
    return message


def normalise_message(message: Any, max_chars: int) -> str:
    text = _as_text(message)
    # Truncate before cleaning: cleaning a 10 MB string only to cut it is waste.
    return clean_text(truncate(text, max_chars))


def normalise_duration(duration_ms: Any) -> float | None:
    if duration_ms is None:
        return None
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, (int, float, Decimal)):
        raise ValueError(f"duration_ms must be a number, got {duration_ms!r}")
    value = float(duration_ms)
    if not math.isfinite(value):
        raise ValueError(f"duration_ms must be a finite number, got {duration_ms!r}")
    return value


def _json_default(value: Any) -> Any:
    """How values that JSON has no type for are stored."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    return str(value)


_dumps_python = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    separators=(",", ":"),
    default=_json_default,
).encode

try:  # The C encoder, built once: json.dumps rebuilds it on every call.
    from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]

    # No cycle markers: a cycle ends in RecursionError, which takes the slow
    # path like any other value that needs repair.
    _c_encode = c_make_encoder(
        None, _json_default, c_encode_basestring, None, ":", ",", False, False, False
    )

    def _dumps(value: Any) -> str:
        return "".join(_c_encode(value, 0))

except (ImportError, TypeError):  # pragma: no cover - CPython has the C encoder
    _dumps = _dumps_python


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _json_safe(value: Any, depth: int, seen: set[int]) -> Any:
    """A copy of ``value`` that JSON and PostgreSQL accept (the slow path)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, str):
        return clean_text(value)
    if depth >= MAX_DETAILS_DEPTH:
        return "[max depth exceeded]"
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if id(value) in seen:
            return "[circular reference]"
        seen.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {
                    clean_text(_as_text(key)): _json_safe(item, depth + 1, seen)
                    for key, item in value.items()
                }
            return [_json_safe(item, depth + 1, seen) for item in value]
        finally:
            seen.discard(id(value))
    try:
        converted = _json_default(value)
    except Exception as exc:  # a __str__ that raises must not lose the record
        return f"[unrepresentable {type(value).__name__}: {type(exc).__name__}]"
    return _json_safe(converted, depth + 1, seen)


def _dumps_checked(details: Any) -> str | None:
    """The fast path: JSON text if it needs no repair, else None."""
    try:
        text = _dumps(details)
    except Exception:  # noqa: BLE001 - NaN, cycles, odd keys, a failing __str__
        return None
    if "\\u0000" in text:
        return None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return text


def normalise_details(details: Any, max_chars: int) -> str | None:
    """``details`` as the JSON text to store (always a JSON object)."""
    if details is None:
        return None
    if not isinstance(details, Mapping):
        details = {"value": details}
    text = _dumps_checked(details)
    if text is None:
        text = _dumps(_json_safe(details, 0, set()))
    if len(text) > max_chars:
        text = _dumps(
            {
                "_truncated": True,
                "_original_chars": len(text),
                "_preview": text[:max_chars],
            }
        )
    return text


# -- the receiving side ------------------------------------------------------


class InvalidRow(ValueError):
    """A row from the queue or a spool file that is not a log record."""


_MAX_CREATED_AT_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z
_HEX = re.compile("[0-9a-f]{32}")


def _optional_identifier(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_IDENTIFIER_CHARS:
        raise InvalidRow(f"{field} must be a string of at most {MAX_IDENTIFIER_CHARS} characters")
    return value


def _identifier_or_none(value: Any) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= MAX_IDENTIFIER_CHARS)


def _as_stored(row: list[Any]) -> bool:
    """Whether a row is exactly what producers send, so that it needs no
    repair: the worker's common case, in one expression (about a third of
    the time of the field-by-field checks below, which say what is wrong)."""
    (id_hex, created_at_us, trace_id, level, category, message,
     step, agent_name, roadmap_id, concept_id, details, duration_ms) = row
    return (
        type(id_hex) is str and len(id_hex) == 32 and _HEX.fullmatch(id_hex) is not None
        and type(created_at_us) is int and 0 <= created_at_us <= _MAX_CREATED_AT_US
        and type(trace_id) is str and 0 < len(trace_id) <= MAX_IDENTIFIER_CHARS
        and level in _LEVELS and category in _CATEGORIES
        and type(message) is str and message != ""
        and _identifier_or_none(step) and _identifier_or_none(agent_name)
        and _identifier_or_none(roadmap_id) and _identifier_or_none(concept_id)
        and (details is None or (type(details) is str and details != ""))
        and (duration_ms is None or (type(duration_ms) is float and math.isfinite(duration_ms)))
    )


def check_wire_row(row: Any) -> list[Any]:
    """Check one wire row; return it, in :data:`WIRE_FIELDS` order, ready to
    store (``duration_ms`` as a float, empty optional text as None).

    Raises :class:`InvalidRow` with the reason; the caller dead-letters it.
    ``details`` stays JSON text: the database parses it.
    """
    if type(row) is list and len(row) == len(WIRE_FIELDS) and _as_stored(row):
        return row
    if not isinstance(row, list) or len(row) != len(WIRE_FIELDS):
        raise InvalidRow(f"a row must be a list of {len(WIRE_FIELDS)} fields")
    (
        id_hex, created_at_us, trace_id, level, category, message,
        step, agent_name, roadmap_id, concept_id, details, duration_ms,
    ) = row
    try:
        UUID(hex=id_hex)
    except (TypeError, ValueError, AttributeError):
        raise InvalidRow("id is not a UUID") from None
    if (
        isinstance(created_at_us, bool)
        or not isinstance(created_at_us, int)
        or not 0 <= created_at_us <= _MAX_CREATED_AT_US
    ):
        raise InvalidRow("created_at_us must be microseconds since the Unix epoch")
    if not isinstance(trace_id, str) or not 0 < len(trace_id) <= MAX_IDENTIFIER_CHARS:
        raise InvalidRow("trace_id must be a non-empty string")
    if level not in _LEVELS:
        raise InvalidRow(f"unknown level {level!r}")
    if category not in _CATEGORIES:
        raise InvalidRow(f"unknown category {category!r}")
    if not isinstance(message, str) or not message:
        raise InvalidRow("message must be a non-empty string")
    if details is not None and not isinstance(details, str):
        raise InvalidRow("details must be JSON text or null")
    if duration_ms is not None and (
        isinstance(duration_ms, bool)
        or not isinstance(duration_ms, (int, float))
        or not math.isfinite(duration_ms)
    ):
        raise InvalidRow("duration_ms must be a finite number or null")
    return [
        id_hex, created_at_us, trace_id, level, category, message,
        _optional_identifier(step, "step"),
        _optional_identifier(agent_name, "agent_name"),
        _optional_identifier(roadmap_id, "roadmap_id"),
        _optional_identifier(concept_id, "concept_id"),
        details or None,
        None if duration_ms is None else float(duration_ms),
    ]


def created_at_of(created_at_us: int) -> datetime:
    """The aware UTC datetime of a wire row's microseconds."""
    return EPOCH + timedelta(microseconds=created_at_us)
