"""Storing a batch of wire rows: one transaction, idempotent.

On PostgreSQL a batch goes in with ``COPY``: the rows cross the wire as CSV
text, with no per-row parameter handling. First straight into
``execution_logs``; a batch with a row already stored (redelivered, or
replayed from a spool) fails that ``COPY`` on the primary key, and is then
copied into a temporary staging table of the connection and moved with one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, which skips the stored
rows: the table ends with every record exactly once. (SQLAlchemy's own
executemany of an ``on_conflict_do_nothing()`` insert would send one
statement per row.)

What Python does per row is kept to what runs at C speed: the check of the
row's field types (:func:`~.wire.check_rows`), the JSON of ``details``
(orjson) and the CSV writer; the values are checked by PostgreSQL during the
``COPY`` (types, lengths, the CHECK constraints of migration 0006). Text the
database cannot take (NUL, lone surrogates, an escaped NUL in JSON) is found
by three searches over each chunk's CSV text, and only then repaired row by
row. The CSV is made while the ``COPY`` runs (:class:`CopySource`), so the
database works on one chunk while Python makes the next.

A row that is not a record, or that the database refuses (a data or integrity
error, or a program limit such as JSON nested too deep: SQLSTATE classes 22,
23 and 54), is set aside in ``execution_log_dead_letters`` with the reason
(and the trace and attempt it names), and the rest of its batch is stored:
the batch is retried in halves, inside savepoints, down to the bad rows. Any
other database error (connection lost, server shutting down, lock timeout,
missing table) says nothing about the rows: it is raised as
:class:`TransientStoreError` so that the caller retries the whole batch. So is
a row with no partition to go to (:func:`row_specific`): the partitions, not
the row, are missing, and the batch waits until they are there.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from .tables import dead_letters, execution_logs
from .fields import COLUMNS, CREATED_AT_US, DETAILS, created_at_of
from .normalise import clean_text, dumps_repaired, repair_details
from .wire import WIRE_VERSION, check_rows, details_text, row_trace, with_clean_text

log = logging.getLogger(__name__)

_TABLE = execution_logs.name
_COLUMN_LIST = ", ".join(COLUMNS)
_STAGE = "execlog_stage"
# LIKE: the staging table has the table's columns, whatever they are.
_PG_STAGE_TABLE = f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (LIKE {_TABLE}) ON COMMIT DELETE ROWS"
# CSV: Python's csv writer is C. An unquoted empty field is NULL, which is
# what it writes for None and for an empty string (an empty optional text
# is stored as NULL; an empty required one is refused by NOT NULL).
_PG_COPY = f"COPY {{table}} ({_COLUMN_LIST}) FROM STDIN WITH (FORMAT csv)"
_PG_INSERT = (
    f"INSERT INTO {_TABLE} ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGE} ON CONFLICT DO NOTHING"
)


class TransientStoreError(Exception):
    """The database could not take the batch now; retry it later, whole."""


class RowRefused(Exception):
    """A row this module refuses before the database sees it."""


@dataclass
class StoreResult:
    received: int = 0
    inserted: int = 0
    dead: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted - self.dead

    def summary(self) -> dict[str, int]:
        """What the task returns (and the worker logs) for a batch."""
        return {"received": self.received, "inserted": self.inserted, "dead": self.dead}


@dataclass
class _Dead:
    source: str
    reason: str
    payload: str
    trace_id: str | None = None
    attempt: int | None = None

    @classmethod
    def of_row(cls, row: Any, reason: str) -> _Dead:
        trace_id, attempt = row_trace(row)
        return cls("row", reason, _payload(row), trace_id, attempt)


def _payload(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=True)[:1_000_000]


def row_specific(exc: BaseException) -> bool:
    """Whether a database error is about the rows (so retrying cannot help)."""
    if isinstance(exc, RowRefused):
        return True
    orig = getattr(exc, "orig", exc)
    pgcode = getattr(orig, "pgcode", None)
    if pgcode:
        return pgcode[:2] in ("22", "23", "54") and not _no_partition(orig)
    return isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError))


def _no_partition(orig: Any) -> bool:
    """A check violation (23514) that names no constraint: "no partition of
    relation ... found for row", or "violates partition constraint" when a
    partition was attached while the statement waited for the default one
    (:mod:`.retention`). Retrying stores the row; a real CHECK names itself.
    """
    return orig.pgcode == "23514" and not orig.diag.constraint_name


def store_rows(engine: Engine, rows: list[Any], version: int = WIRE_VERSION) -> StoreResult:
    """Store a batch of wire rows; see the module's docstring."""
    result = StoreResult(received=len(rows))
    values, refused_rows = check_rows(rows, version)
    dead = [_Dead.of_row(row, reason) for row, reason in refused_rows]
    try:
        result.inserted, refused = _store(engine, values, dead)
    except (sa.exc.DBAPIError, _driver_errors()) as exc:
        raise TransientStoreError(str(exc)) from exc
    dead.extend(refused)
    result.dead = len(dead)
    result.reasons = [d.reason for d in dead]
    return result


def _store(engine: Engine, values: list[list[Any]], dead: list[_Dead]) -> tuple[int, list[_Dead]]:
    """Three tries, each in a transaction of its own, the first that works:

    1. ``COPY`` straight into the table: the fast way, when no row is there
       already and none is refused (nearly always);
    2. ``COPY`` into the staging table, then ``INSERT ... ON CONFLICT DO
       NOTHING``: a redelivered or replayed batch;
    3. the same in savepoints, halving around the rows the database refuses.
    """
    for careful in (False, True):
        try:
            with engine.begin() as connection:
                inserted = _insert(connection, values, skip_existing=careful)
                _dead_letter(connection, dead)
            return inserted, []
        except Exception as exc:
            if not row_specific(exc):
                raise
            if careful:
                log.warning("execlog: batch of %d refused (%s); isolating the bad rows", len(values), exc)
    with engine.begin() as connection:
        inserted, refused = _insert_or_split(connection, values)
        _dead_letter(connection, dead + refused)
    return inserted, refused


def dead_letter_message(engine: Engine, payload: Any, reason: str) -> None:
    """Set aside a whole message that is not a batch at all."""
    try:
        with engine.begin() as connection:
            _dead_letter(connection, [_Dead("message", reason, _payload(payload))])
    except (sa.exc.DBAPIError, _driver_errors()) as exc:
        raise TransientStoreError(str(exc)) from exc


def _driver_errors() -> type[Exception] | tuple[type[Exception], ...]:
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        return ()
    return psycopg2.Error


def _insert_or_split(connection: Connection, values: list[list[Any]]) -> tuple[int, list[_Dead]]:
    """Insert in savepoints, halving around rows the database refuses."""
    if not values:
        return 0, []
    try:
        with connection.begin_nested():
            return _insert(connection, values), []
    except Exception as exc:
        if not row_specific(exc):
            raise
        if len(values) == 1:
            reason = str(getattr(exc, "orig", exc)).strip() or type(exc).__name__
            return 0, [_Dead.of_row(values[0], reason)]
    middle = len(values) // 2
    left, left_dead = _insert_or_split(connection, values[:middle])
    right, right_dead = _insert_or_split(connection, values[middle:])
    return left + right, left_dead + right_dead


def _insert(connection: Connection, values: list[list[Any]], *, skip_existing: bool = True) -> int:
    if not values:
        return 0
    if connection.dialect.name == "postgresql":
        data = CopySource(values)
        with _raw_cursor(connection) as cursor:
            if not skip_existing:
                cursor.copy_expert(_PG_COPY.format(table=_TABLE), data)
                return int(cursor.rowcount)
            # Every time: a CREATE in a transaction that rolls back is undone.
            cursor.execute(_PG_STAGE_TABLE)
            cursor.copy_expert(_PG_COPY.format(table=_STAGE), data)
            cursor.execute(_PG_INSERT)
            inserted = int(cursor.rowcount)
            if connection.in_nested_transaction():
                cursor.execute(f"DELETE FROM {_STAGE}")  # the next try in this transaction starts empty
            return inserted
    return _insert_generic(connection, values)


class CopySource:
    """What ``COPY`` reads: the rows as UTF-8 CSV, made a chunk at a time as
    psycopg2 asks for it. psycopg2 lets go of the GIL while it sends a chunk,
    so PostgreSQL copies one chunk while Python makes the next, on another
    core. A chunk in which a search over its text finds what PostgreSQL
    refuses (NUL, a lone surrogate, an escaped NUL in JSON) is made again
    with its rows repaired."""

    CHUNK_ROWS = 256

    def __init__(self, values: list[list[Any]]) -> None:
        self._values = values
        self._next = 0
        #: The text of each whole second (UTC) seen so far: a batch's records
        #: mostly share a few seconds.
        self._seconds: dict[int, str] = {}

    def read(self, size: int = -1) -> bytes:
        start = self._next
        if start >= len(self._values):
            return b""
        self._next = start + self.CHUNK_ROWS
        chunk = self._values[start:self._next]
        text = self._csv(chunk)
        if "\x00" in text or "\\u0000" in text:
            return self._csv([_repaired(row) for row in chunk]).encode("utf-8")
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return self._csv([_repaired(row) for row in chunk]).encode("utf-8")

    def _csv(self, rows: list[list[Any]]) -> str:
        # details_text's common case inline (5% of making the text).
        seconds_text = self._seconds
        dumps = orjson.dumps
        out = io.StringIO()
        writerow = csv.writer(out, lineterminator="\n").writerow
        for row in rows:
            seconds, micro = divmod(row[CREATED_AT_US], 1_000_000)
            prefix = seconds_text.get(seconds)
            if prefix is None:
                prefix = seconds_text[seconds] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
            details = row[DETAILS]
            if details is not None and details.__class__ is not str:
                try:
                    details = dumps(details).decode()
                except TypeError:
                    details = details_text(details)
            writerow([*row[:CREATED_AT_US], f"{prefix}.{micro:06d}+00", *row[CREATED_AT_US + 1:DETAILS],
                      details, *row[DETAILS + 1:]])
        return out.getvalue()


def _repaired(row: list[Any]) -> list[Any]:
    """A row with the text PostgreSQL refuses replaced (the slow path)."""
    row = with_clean_text(row)
    details = row[DETAILS]
    if details is not None:
        if isinstance(details, str):  # version 1: JSON text
            try:
                details = json.loads(details)
            except ValueError:
                row[DETAILS] = clean_text(details)  # PostgreSQL will say what is wrong with it
                return row
        row[DETAILS] = dumps_repaired(repair_details(details))
    return row


@contextmanager
def _raw_cursor(connection: Connection) -> Iterator[Any]:
    """A psycopg2 cursor on the connection's transaction; a connection that
    died under it is invalidated, so that the pool does not hand it out."""
    raw = connection.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        yield cursor
    except Exception:
        if raw.closed:
            connection.invalidate()
        raise
    finally:
        if not raw.closed:
            cursor.close()


def _insert_generic(connection: Connection, values: list[list[Any]]) -> int:
    """Other databases (SQLite, the embedded default): one executemany."""
    table = execution_logs
    params = []
    for value in values:
        item = dict(zip(COLUMNS, _repaired(value)))
        try:
            item["id"] = UUID(item["id"])
            item["details"] = None if item["details"] is None else json.loads(item["details"])
        except ValueError as exc:
            raise RowRefused(f"not a record: {exc}") from None
        item["created_at"] = created_at_of(item["created_at"])
        params.append(item)
    statement = sqlite_insert(table).on_conflict_do_nothing()
    return connection.execute(statement, params).rowcount


def _dead_letter(connection: Connection, dead: list[_Dead]) -> None:
    if not dead:
        return
    connection.execute(
        dead_letters.insert(),
        [{"source": d.source, "reason": d.reason[:10_000], "payload": d.payload,
          "trace_id": d.trace_id, "attempt": d.attempt} for d in dead],
    )
    log.warning("execlog: %d record(s) dead-lettered: %s", len(dead), dead[0].reason)
