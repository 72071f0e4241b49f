"""What a record's values must be, and the repairs that make them so.

Refused in ``log()``, in the caller's thread, with a ``ValueError`` naming the
field: an unknown level or category, a missing trace_id or message, an
identifier longer than :data:`~.fields.MAX_IDENTIFIER_CHARS` (cutting it would
merge two traces), a duration that is not a finite number.

Repaired, never refused (a record that left the producer can be stored as
it is):

* in ``log()``, because the checks cost next to nothing there (a length, a
  ``memchr`` for NUL, ``str.isascii``): NUL characters (PostgreSQL rejects
  them) and lone UTF-16 surrogates (not encodable as UTF-8) in text become
  U+FFFD, bytes are decoded as UTF-8 with replacement, and a message over its
  size is truncated with a marker that says how much was cut;
* when the record is shipped (:mod:`.wire`), and only if a cheap check says
  it is needed: ``details`` values JSON has no type for become strings, NaN
  and the infinities become ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``,
  cycles are replaced by a marker, nesting too deep to encode is cut at
  :data:`MAX_DETAILS_DEPTH` levels with a marker, NUL and surrogates in it
  are replaced as in text, a non-dict value is wrapped as ``{"value": ...}``,
  and a ``details`` whose JSON is over its size is replaced by a truncation
  marker.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from .constants import LogCategory, LogLevel
from .fields import MAX_IDENTIFIER_CHARS

MAX_DETAILS_DEPTH = 32

LEVELS: dict[str, str] = {level.value: level.value for level in LogLevel}
CATEGORIES: dict[str, str] = {category.value: category.value for category in LogCategory}
_SURROGATES = re.compile("[\ud800-\udfff]")


# -- text ----------------------------------------------------------------------


def clean_text(text: str) -> str:
    """Replace what PostgreSQL cannot store in text: NUL and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():  # O(1) in CPython: ASCII text skips the encode
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


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


# -- the checks of log() -----------------------------------------------------


def normalise_level(level: Any) -> str:
    return _one_of(LEVELS, "level", level)


def normalise_category(category: Any) -> str:
    return _one_of(CATEGORIES, "category", category)


def _one_of(names: dict[Any, str], field: str, value: Any) -> str:
    """``value``'s canonical name in ``names`` (also by its text, any case)."""
    found = names.get(value)
    if found is not None:
        return found
    try:
        return names[as_text(value).lower()]
    except KeyError:
        raise ValueError(f"{field} must be one of {sorted(names)}, got {value!r}") from None


def check_identifier(value: Any, field: str, *, required: bool = False) -> str | None:
    """An id-like field (trace_id, step, agent_name, ...): kept whole or refused.

    The common case, a short clean ``str``, costs three checks.
    """
    if (value.__class__ is str and 0 < len(value) <= MAX_IDENTIFIER_CHARS
            and "\x00" not in value and value.isascii()):
        return value
    if value is None or value == "":
        if required:
            raise ValueError(f"{field} is required")
        return None
    text = as_text(value)
    if len(text) > MAX_IDENTIFIER_CHARS:
        raise ValueError(
            f"{field} is {len(text)} characters long; the limit is {MAX_IDENTIFIER_CHARS}"
        )
    if text == "":
        if required:
            raise ValueError(f"{field} is required")
        return None
    return clean_text(text)


def normalise_message(message: Any, max_chars: int) -> str:
    """A message, checked (it is required) and cleaned; cut to ``max_chars``."""
    if message.__class__ is str and 0 < len(message) <= max_chars and "\x00" not in message \
            and message.isascii():
        return message
    if message is None or message == "" or message == b"":
        raise ValueError("message is required")
    # Truncate before cleaning: cleaning a 10 MB string only to cut it is waste.
    return clean_text(truncate(as_text(message), max_chars))


def normalise_duration(duration_ms: Any) -> float | None:
    if duration_ms is None:
        return None
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, (int, float, Decimal)):
        raise ValueError(f"duration_ms must be a number, got {duration_ms!r}")
    value = float(duration_ms)
    if not math.isfinite(value):
        raise ValueError(f"duration_ms must be a finite number, got {duration_ms!r}")
    return value


def normalise_attempt(attempt: Any) -> int | None:
    if attempt is None:
        return None
    if attempt.__class__ is not int or attempt < 0 or attempt > 2**31 - 1:
        raise ValueError(f"attempt must be a whole number from 0, got {attempt!r}")
    return attempt


def copy_details(details: Any) -> dict[str, Any] | None:
    """The caller's ``details``, copied one level deep (a non-mapping is
    wrapped as ``{"value": ...}``)."""
    if details is None:
        return None
    if details.__class__ is dict:
        return details.copy()
    if isinstance(details, Mapping):
        return dict(details)
    return {"value": details}


# -- details: the checks and repairs of shipping ------------------------------

#: Types JSON holds as they are (bool is a subclass of int; None's type).
PLAIN_SCALARS = frozenset((str, int, bool, type(None)))


def plain_details(value: dict[str, Any]) -> bool:
    """Whether ``details`` can be encoded as it is: no NaN or infinity, no
    container nested deeper than JSON encoders go. Other problems (text JSON
    cannot hold, odd keys, cycles, values a ``default`` cannot convert) make
    the encoder fail, which sends the record to :func:`repair_details`."""
    values = value.values()
    for item in values:  # the common case: scalars only (a loop beats a set here)
        if item.__class__ not in PLAIN_SCALARS:
            return _plain(values, 0)
    return True


def _plain(values: Any, depth: int) -> bool:
    if depth > MAX_DETAILS_DEPTH:
        return False
    for value in values:
        kind = value.__class__
        if kind in PLAIN_SCALARS:
            continue
        if kind is float:
            if value - value != 0.0:  # NaN or an infinity
                return False
        elif kind is dict:
            if not _plain(value.values(), depth + 1):
                return False
        elif kind is list or kind is tuple:
            if not _plain(value, depth + 1):
                return False
    return True


def json_default(value: Any) -> Any:
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


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def repair_details(details: Any) -> Any:
    """A copy of ``details`` that JSON and PostgreSQL accept (the slow path)."""
    return _json_safe(details, 0, set())


def _json_safe(value: Any, depth: int, seen: set[int]) -> Any:
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
                    clean_text(as_text(key)): _json_safe(item, depth + 1, seen)
                    for key, item in value.items()
                }
            return [_json_safe(item, depth + 1, seen) for item in value]
        finally:
            seen.discard(id(value))
    try:
        converted = json_default(value)
    except Exception as exc:  # a __str__ that raises must not lose the record
        return f"[unrepresentable {type(value).__name__}: {type(exc).__name__}]"
    return _json_safe(converted, depth + 1, seen)


#: The standard library's encoder: it takes integers of any size, which the
#: fast encoder refuses; only repaired details go through it.
dumps_repaired = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def limit_details(details: Any, text: str, max_chars: int) -> Any:
    """``details``, or a truncation marker when its JSON ``text`` is too long."""
    if len(text) <= max_chars:
        return details
    return {"_truncated": True, "_original_chars": len(text), "_preview": text[:max_chars]}
