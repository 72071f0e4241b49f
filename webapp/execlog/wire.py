"""The wire form of records: encoded once by the producer, checked by the worker.

A record travels as a JSON array of its fields (:data:`~.fields.FIELDS`),
``details`` as a JSON object inside it, so every field is encoded once. A
batch is one Celery task message whose arguments are ``(WIRE_VERSION, rows)``;
its body is joined from the rows' encoded bytes (:mod:`.sinks`), and a spool
segment is the same rows, one per line.

The producer encodes with orjson, in C, the buffered records of a message a
group at a time (:class:`RowBatch`), and takes the slow path of
:mod:`.normalise` only when a cheap check says a record needs it: its
``details`` hold NaN, an infinity or deep nesting (:func:`~.normalise.plain_details`),
orjson refuses it (lone surrogates, keys that are not text, cycles, a value
its ``default`` cannot convert), the encoded row holds an escaped NUL, or the
row is longer than the ``details`` size limit.

The worker (:func:`check_rows`) accepts a row when the types of its fields are
one of the combinations a record can have, one set lookup per row; the
values are then checked by PostgreSQL while it copies them (the table's
types, lengths and CHECK constraints, migration 0006), and a row it refuses is
dead-lettered on its own. Rows of another shape get the precise check, which
says what is wrong. Version 1 rows (before ``attempt``, with ``details`` as
JSON text) are still accepted, from queues and spools written before.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any
from uuid import UUID

import orjson

from .fields import ATTEMPT, DETAILS, FIELDS, MAX_IDENTIFIER_CHARS, TEXT_POSITIONS, TRACE_ID, Limits
from .normalise import (
    CATEGORIES, LEVELS, PLAIN_SCALARS, clean_text, dumps_repaired, json_default, limit_details, plain_details,
    repair_details,
)

#: The version of the row layout in task messages and spool lines.
WIRE_VERSION = 2
#: Rows of version 1 had no ``attempt`` and carried ``details`` as JSON text.
V1_FIELDS = len(FIELDS) - 1

NUL_ESCAPE = b"\\u0000"
_dumps = orjson.dumps
#: Every encoded row ends with a newline: a spool line as it is, and JSON
#: whitespace between the rows of a message body. A row is
#: ``orjson.dumps(record, json_default, ROW_OPTION)``.
ROW_OPTION = _NEWLINE = orjson.OPT_APPEND_NEWLINE


# -- the producer --------------------------------------------------------------


def encode_record(record: list[Any], limits: Limits) -> bytes:
    """A record's wire row (see the module's docstring for when it is repaired)."""
    details = record[DETAILS]
    if details is not None:
        for value in details.values():  # plain_details's common case, inline (log() pays it)
            if value.__class__ not in PLAIN_SCALARS:
                if not plain_details(details):
                    return _encode_repaired(record, limits)
                break
    try:
        data = _dumps(record, json_default, _NEWLINE)
    except TypeError:  # orjson.JSONEncodeError is one
        return _encode_repaired(record, limits)
    # An escaped NUL needs a backslash: one memchr rules it out in the common
    # case. (bytes.find, not "in", which first tries the needle as an
    # integer, raising and clearing a TypeError.)
    if ((data.find(b"\\") < 0 or data.find(NUL_ESCAPE) < 0)
            and (details is None or len(data) <= limits.max_details_chars)):
        return data
    return _encode_repaired(record, limits)


#: Records encoded in one orjson call by :meth:`RowBatch.encode`: the rows of
#: such a group together stay well under the ``details`` size limit (65,536
#: characters by default) for records of ordinary size.
ENCODE_GROUP = 64


class RowBatch(Sequence[bytes]):
    """The rows of one message: ``joined``, the rows' bytes separated by
    commas (the middle of a message body), and each row on demand.

    :meth:`encode` encodes records a group at a time, one orjson call each
    (a call per record cost a third of what the flusher spent, in Python
    around the C), and runs :func:`encode_record`'s checks once over the
    group: the types of the ``details`` values, an escaped NUL in its
    bytes, its length against the size limit (a group within it has no
    row over it). A group that fails is encoded in halves, down to single
    records, which take :func:`encode_record`. The rows one by one (the
    spool's lines, when the broker is down) are encoded only when asked for.
    """

    __slots__ = ("joined", "_records", "_rows")

    def __init__(self, joined: bytes, records: Sequence[Any] = (), rows: list[bytes] | None = None) -> None:
        self.joined = joined
        self._records = records
        self._rows = rows

    @classmethod
    def of_rows(cls, rows: list[bytes]) -> RowBatch:
        """Rows encoded already (a spool segment's, or the disk journal's)."""
        return cls(b",".join(rows), rows=rows)

    @classmethod
    def encode(cls, records: Sequence[Any]) -> RowBatch:
        """The rows of buffered records (:class:`~.record.LogRecord`)."""
        return cls(b",".join([_encode_joined(records[start:start + ENCODE_GROUP])
                              for start in range(0, len(records), ENCODE_GROUP)]), records)

    @property
    def rows(self) -> list[bytes]:
        if self._rows is None:
            self._rows = [record.wire_bytes() for record in self._records]
        return self._rows

    def __len__(self) -> int:
        return len(self._rows if self._rows is not None else self._records)

    def __getitem__(self, index: Any) -> Any:
        return self.rows[index]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.rows)

    def decode(self) -> list[list[Any]]:
        """The rows as the worker receives them, in one orjson call."""
        return orjson.loads(b"[" + self.joined + b"]")  # type: ignore[no-any-return]


_details_of = itemgetter(DETAILS)
_limits_of = attrgetter("limits")


def _encode_joined(records: Sequence[Any]) -> bytes:
    """The records' rows joined by commas: in one call when the group passes
    the checks, else in halves."""
    if len(records) == 1:
        return records[0].wire_bytes()  # type: ignore[no-any-return]
    data = _encode_group(records)
    if data is not None:
        return data
    half = len(records) // 2
    return _encode_joined(records[:half]) + b"," + _encode_joined(records[half:])


def _encode_group(records: Sequence[Any]) -> bytes | None:
    """The group's rows joined by commas, or None when a check fails."""
    limits = records[0].limits
    if list(map(_limits_of, records)).count(limits) != len(records):
        return None
    details = list(filter(None, map(_details_of, records)))
    try:  # plain_details's common case, at C speed: only scalar values
        plain = PLAIN_SCALARS.issuperset(map(type, itertools.chain.from_iterable(map(dict.values, details))))
    except TypeError:  # details that are not a dict
        return None
    if not plain and not all(map(plain_details, details)):
        return None
    try:
        data = _dumps(records, json_default)
    except TypeError:
        return None
    if (data.find(b"\\") >= 0 and data.find(NUL_ESCAPE) >= 0) or len(data) > limits.max_details_chars:
        return None
    return data[1:-1]


def decode_rows(rows: Sequence[bytes]) -> list[list[Any]]:
    """Encoded rows, decoded (as the worker receives them)."""
    if isinstance(rows, RowBatch):
        return rows.decode()
    return [orjson.loads(row) for row in rows]


def joined_rows(rows: Sequence[bytes]) -> bytes:
    """Encoded rows separated by commas: the middle of a message body."""
    return rows.joined if isinstance(rows, RowBatch) else b",".join(rows)


def with_clean_text(row: list[Any]) -> list[Any]:
    """A copy of ``row`` with NUL and lone surrogates replaced in its text fields."""
    row = list(row)
    for index in TEXT_POSITIONS:
        if isinstance(row[index], str):
            row[index] = clean_text(row[index])
    return row


def _encode_repaired(record: list[Any], limits: Limits) -> bytes:
    row = with_clean_text(record)
    details = row[DETAILS]
    if details is not None:
        if not isinstance(details, Mapping):
            details = {"value": details}
        safe = repair_details(details)
        row[DETAILS] = limit_details(safe, dumps_repaired(safe), limits.max_details_chars)
    try:
        return orjson.dumps(row, option=_NEWLINE)
    except TypeError:  # an integer over 64 bits: the standard library takes it
        return dumps_repaired(row).encode("utf-8") + b"\n"


def decode_row(data: bytes) -> list[Any]:
    return orjson.loads(data)  # type: ignore[no-any-return]


def spool_lines(rows: Iterable[bytes]) -> bytes:
    """Rows as a spool file holds them: one per line (JSON has no raw newline;
    an encoded row ends with one, a row read back from a spool does not)."""
    return b"".join(row if row.endswith(b"\n") else row + b"\n" for row in rows)


def read_spooled_line(line: bytes) -> bytes | None:
    """The wire row (of this version) a spool line holds, or None when the
    line is not a row (a write cut short by a crash)."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(row, list):
        return None
    if len(row) == V1_FIELDS:
        return orjson.dumps(upgrade_v1(row))
    return line


def upgrade_v1(row: list[Any]) -> list[Any]:
    """A version 1 row in today's layout (best effort: the worker checks it)."""
    details = row[DETAILS]
    if isinstance(details, str):
        try:
            details = orjson.loads(details)
        except orjson.JSONDecodeError:
            details = {"value": details}
    return [*row[:DETAILS], details, *row[DETAILS + 1:], None]


# -- the worker ------------------------------------------------------------------

class NotABatch(ValueError):
    """A message on the logs queue that is not ``(version, rows)``."""


#: The batch versions a worker reads: version 1 batches may still wait in
#: queues written before version 2.
VERSIONS = (1, WIRE_VERSION)


def unpack_batch(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, list[Any]]:
    """A batch message's arguments: its wire version and its rows."""
    if kwargs or len(args) != 2:
        raise NotABatch("expected the arguments (version, rows)")
    version, rows = args
    if version.__class__ is not int or version not in VERSIONS:
        raise NotABatch(f"unsupported batch version {version!r}")
    if not isinstance(rows, list):
        raise NotABatch("rows must be a list")
    return version, rows


class InvalidRow(ValueError):
    """A row from the queue or a spool file that is not a log record."""


#: 9999-12-31T23:59:59Z, the last instant PostgreSQL and Python both hold.
MAX_CREATED_AT_US = 253_402_300_799_000_000

_NONE = type(None)
#: The types each kind of field may hold in a row the worker takes as it is.
_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "time": (int,),
    "identifier": (str,),
    "level": (str,),
    "category": (str,),
    "text": (str,),
    "optional_identifier": (str, _NONE),
    "details": (dict, _NONE),
    "text_details": (str, _NONE),  # version 1
    "duration": (float, int, _NONE),
    "attempt": (int, _NONE),
}


def _accepted_types(kinds: list[str]) -> frozenset[tuple[type, ...]]:
    return frozenset(itertools.product(*(_KIND_TYPES[kind] for kind in kinds)))


_KINDS_V2 = [f.kind for f in FIELDS]
_KINDS_V1 = [("text_details" if f.kind == "details" else f.kind) for f in FIELDS[:V1_FIELDS]]
#: Every combination of field types a record can have (a few hundred).
ACCEPTED_TYPES = {2: _accepted_types(_KINDS_V2), 1: _accepted_types(_KINDS_V1)}


def check_rows(rows: list[Any], version: int) -> tuple[list[list[Any]], list[tuple[Any, str]]]:
    """Split a batch into rows to store (in today's layout) and refused rows
    with the reason. The types of a row are checked here, in one set lookup
    (C speed); its values by the database (see the module's docstring)."""
    accepted = ACCEPTED_TYPES[version]
    good: list[list[Any]] = []
    refused: list[tuple[Any, str]] = []
    for row in rows:
        if row.__class__ is list and tuple(map(type, row)) in accepted \
                and 0 <= row[1] <= MAX_CREATED_AT_US:
            good.append(row if version == WIRE_VERSION else upgrade_checked_v1(row))
            continue
        try:
            good.append(check_row(row, version))
        except InvalidRow as exc:
            refused.append((row, str(exc)))
    return good, refused


def upgrade_checked_v1(row: list[Any]) -> list[Any]:
    """A checked version 1 row; its ``details`` stay JSON text (the database
    parses them)."""
    return [*row, None]


def check_row(row: Any, version: int = WIRE_VERSION) -> list[Any]:
    """The precise check of one row: the row, normalised (empty optional text
    as None, ``duration_ms`` as a float), or :class:`InvalidRow` with the reason."""
    width = len(FIELDS) if version == WIRE_VERSION else V1_FIELDS
    if not isinstance(row, list) or len(row) != width:
        raise InvalidRow(f"a row must be a list of {width} fields")
    values = [_CHECKS[field.kind](value, field.name, version)
              for field, value in zip(FIELDS, row)]
    if version != WIRE_VERSION:
        values.append(None)
    return values


def _id(value: Any, name: str, version: int) -> str:
    try:
        UUID(hex=value)
    except (TypeError, ValueError, AttributeError):
        raise InvalidRow("id is not a UUID") from None
    return value  # type: ignore[no-any-return]


def _time(value: Any, name: str, version: int) -> int:
    if value.__class__ is not int or not 0 <= value <= MAX_CREATED_AT_US:
        raise InvalidRow("created_at_us must be microseconds since the Unix epoch")
    return value  # type: ignore[no-any-return]


def _identifier(value: Any, name: str, version: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IDENTIFIER_CHARS:
        raise InvalidRow(f"{name} must be a non-empty string")
    return value


def _level(value: Any, name: str, version: int) -> str:
    if not isinstance(value, str) or value not in LEVELS:
        raise InvalidRow(f"unknown level {value!r}")
    return value


def _category(value: Any, name: str, version: int) -> str:
    if not isinstance(value, str) or value not in CATEGORIES:
        raise InvalidRow(f"unknown category {value!r}")
    return value


def _text(value: Any, name: str, version: int) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRow(f"{name} must be a non-empty string")
    return value


def _optional_identifier(value: Any, name: str, version: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_IDENTIFIER_CHARS:
        raise InvalidRow(f"{name} must be a string of at most {MAX_IDENTIFIER_CHARS} characters")
    return value


def _details(value: Any, name: str, version: int) -> Any:
    if value is None or value == "":
        return None
    expected = dict if version == WIRE_VERSION else str
    if not isinstance(value, expected):
        raise InvalidRow("details must be a JSON object or null" if expected is dict
                         else "details must be JSON text or null")
    return value


def _duration(value: Any, name: str, version: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRow("duration_ms must be a finite number or null")
    return float(value)


def _attempt(value: Any, name: str, version: int) -> int | None:
    if value is None:
        return None
    if value.__class__ is not int or not 0 <= value <= 2**31 - 1:
        raise InvalidRow("attempt must be a whole number from 0, or null")
    return value  # type: ignore[no-any-return]


_CHECKS = {
    "id": _id, "time": _time, "identifier": _identifier, "level": _level,
    "category": _category, "text": _text, "optional_identifier": _optional_identifier,
    "details": _details, "duration": _duration, "attempt": _attempt,
}


def details_text(details: Any) -> str | None:
    """A checked row's ``details`` as the JSON text to store (version 1 rows
    carry it as text already); repaired when it holds what JSON cannot."""
    if details is None or details.__class__ is str:
        return details  # type: ignore[no-any-return]
    try:
        return orjson.dumps(details).decode()
    except TypeError:
        return dumps_repaired(repair_details(details))


def row_trace(row: Any) -> tuple[str | None, int | None]:
    """The trace and attempt a (possibly broken) row names, for its dead letter."""
    if not isinstance(row, list) or len(row) < V1_FIELDS:
        return None, None
    trace = row[TRACE_ID]
    attempt = row[ATTEMPT] if len(row) > ATTEMPT else None
    return (
        trace if isinstance(trace, str) and 0 < len(trace) <= MAX_IDENTIFIER_CHARS else None,
        attempt if attempt.__class__ is int and 0 <= attempt <= 2**31 - 1 else None,
    )
