"""Retention of ``execution_logs``: daily partitions on PostgreSQL, deletes by
age elsewhere.

On PostgreSQL the table is range-partitioned by ``created_at`` into UTC days
(``execution_logs_p20261128`` holds ``[2026-11-28, 2026-11-29)`` UTC) plus a
DEFAULT partition, ``execution_logs_default`` (migration
``0003_partition_execution_logs``). :func:`apply_retention`, run every hour
by the beat task ``execlog.maintain_partitions`` and on demand by ``flask
execlog prune``:

* creates the partitions of today and the next :data:`DAYS_AHEAD` days;
* moves rows out of the default partition into partitions of their own days
  (days inside the retention window, up to today + :data:`DAYS_AHEAD`);
* drops whole partitions older than the window, and deletes the few old rows
  left in the default partition: retention is a ``DROP TABLE``, not a
  ``DELETE`` of millions of rows followed by vacuum.

Why a DEFAULT partition rather than creating a missing partition when an
insert fails: an insert must never fail because its day has no partition yet
(a skewed clock, a spool replayed after a long outage, a beat that was down).
With the default partition such rows are simply stored, and the worker's
insert stays one plain statement: no DDL on the hot path, no worker racing
another to create the same table, and no DDL rights needed by the insert
itself. The cost is paid here, off the hot path: a partition is created as a
plain table, the rows of its day are moved into it from the default partition
and it is attached, in one transaction that holds only the default partition
exclusively (inserts of days that have a partition go on). An insert that
raced such an attach is retried by the worker, not dead-lettered
(:func:`webapp.execlog.store.row_specific`).

The window: rows created before midnight UTC of ``today - retention_days``
are removed, so a prune keeps today plus ``retention_days`` whole days, and
PostgreSQL and SQLite keep the same rows. ``retention_days = 0`` keeps
everything (partitions are still created).

Elsewhere (SQLite, the embedded default) the table is plain and old rows are
deleted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from celery import shared_task
from flask import current_app
from sqlalchemy.engine import Connection, Engine

from ..names import RETENTION_TASK
from .extension import store_engine
from .tables import execution_logs

log = logging.getLogger(__name__)

PARENT = execution_logs.name
DEFAULT_PARTITION = f"{PARENT}_default"
#: Partitions made ahead of time: a beat that is down for up to this many
#: days costs nothing (later rows wait in the default partition until it runs).
DAYS_AHEAD = 7
#: The longest a maintenance statement waits for a table lock (a DROP needs
#: the parent exclusively); inserts queued behind it wait no longer. A step
#: that times out fails the run, and the next run does it.
LOCK_TIMEOUT = "2s"
#: pg_advisory_xact_lock key that serialises maintenance steps (the beat task,
#: ``flask execlog prune``, a second beat started by mistake).
ADVISORY_LOCK_KEY = 7_011_905_287

_PARTITION_NAME = re.compile(rf"^{PARENT}_p(\d{{8}})$")
_COLUMNS = ", ".join(column.name for column in execution_logs.columns)


@dataclass
class RetentionReport:
    """What one run did. ``cutoff``: rows created before it are gone."""

    cutoff: datetime | None
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved: int = 0
    deleted: int = 0

    def lines(self) -> list[str]:
        if self.cutoff is None:
            head = "retention: keeping every row (EXECLOG_RETENTION_DAYS=0)"
        else:
            head = f"retention: removing rows created before {self.cutoff.isoformat()}"
        lines = [head]
        lines += [f"created partition {name}" for name in self.created]
        lines += [f"dropped partition {name}" for name in self.dropped]
        if self.moved:
            lines.append(f"moved {self.moved} row(s) out of {DEFAULT_PARTITION}")
        lines.append(f"deleted {self.deleted} row(s)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["cutoff"] = None if self.cutoff is None else self.cutoff.isoformat()
        return result


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def is_partition(table_name: str) -> bool:
    """Whether a table is one of the partitions this module manages."""
    return table_name == DEFAULT_PARTITION or _PARTITION_NAME.match(table_name) is not None


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name`` hook: autogenerate (and compare_metadata)
    must leave the partitions alone, since the models do not describe them."""
    return not (type_ == "table" and name is not None and is_partition(name))


def retention_cutoff(today: date, retention_days: int) -> datetime | None:
    """Midnight UTC ``retention_days`` before ``today``; None keeps everything."""
    if retention_days < 0:
        raise ValueError("retention_days must be 0 (keep everything) or more")
    if retention_days == 0:
        return None
    return _midnight(today - timedelta(days=retention_days))


def apply_retention(engine: Engine, retention_days: int, *, today: date | None = None) -> RetentionReport:
    """Create, fill and drop partitions (PostgreSQL) or delete old rows (other
    databases); ``today`` is the current UTC date unless given."""
    today = today or datetime.now(timezone.utc).date()
    report = RetentionReport(retention_cutoff(today, retention_days))
    if _is_partitioned(engine):
        _maintain_partitions(engine, today, report)
    elif report.cutoff is not None:
        with engine.begin() as connection:
            report.deleted = _delete_older(connection, execution_logs, report.cutoff)
    return report


@shared_task(
    name=RETENTION_TASK,
    ignore_result=True,
    # A lock timeout or a lost connection: try again soon rather than in an hour.
    autoretry_for=(sa.exc.OperationalError,),
    retry_backoff=30,
    max_retries=3,
)
def maintain_partitions() -> dict[str, Any]:
    """The beat task: apply ``EXECLOG_RETENTION_DAYS`` (see the module)."""
    settings = current_app.extensions["execlog"].settings
    report = apply_retention(store_engine(current_app), settings.retention_days)
    for line in report.lines():
        log.info("execlog: %s", line)
    return report.as_dict()


# -- PostgreSQL ---------------------------------------------------------------


def _is_partitioned(engine: Engine) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as connection:
        kind = connection.execute(
            sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT}
        ).scalar()
    return kind == "p"


def _maintain_partitions(engine: Engine, today: date, report: RetentionReport) -> None:
    with _step(engine) as connection:
        if _ensure_default_partition(connection):
            report.created.append(DEFAULT_PARTITION)
    first_kept = None if report.cutoff is None else report.cutoff.date()
    last = today + timedelta(days=DAYS_AHEAD)
    with engine.connect() as connection:
        existing = _partition_days(connection)
        wanted = {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
        wanted.update(_days_in_default_partition(connection, first_kept, last))
    for day in sorted(wanted - existing):
        with _step(engine) as connection:
            moved = _create_partition(connection, day)
        if moved is not None:
            report.created.append(partition_name(day))
            report.moved += moved
    if first_kept is None:
        return
    for day in sorted(d for d in existing if d < first_kept):
        with _step(engine) as connection:
            if _drop_partition(connection, day):
                report.dropped.append(partition_name(day))
    with _step(engine) as connection:
        default = sa.table(DEFAULT_PARTITION, sa.column("created_at", sa.DateTime(timezone=True)))
        report.deleted += _delete_older(connection, default, report.cutoff)


@contextmanager
def _step(engine: Engine) -> Iterator[Connection]:
    """One maintenance step: its own transaction, after the other runs' steps."""
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        connection.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        yield connection


def _ensure_default_partition(connection: Connection) -> bool:
    """Recreate the default partition if someone dropped it; whether it did."""
    has_default = connection.execute(
        sa.text("SELECT partdefid <> 0 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t)"),
        {"t": PARENT},
    ).scalar_one()
    if has_default:
        return False
    connection.execute(sa.text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT"))
    return True


def _partition_days(connection: Connection) -> set[date]:
    names = connection.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": PARENT},
    ).scalars()
    days = set()
    for name in names:
        match = _PARTITION_NAME.match(name)
        if match:
            days.add(datetime.strptime(match.group(1), "%Y%m%d").date())
    return days


def _days_in_default_partition(connection: Connection, first: date | None, last: date) -> set[date]:
    """UTC days of the rows in the default partition between ``first`` (None:
    any) and ``last``; rows further ahead (a clock far in the future) stay."""
    low = _midnight(first) if first else datetime(1970, 1, 1, tzinfo=timezone.utc)
    rows = connection.execute(
        sa.text(
            f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM {DEFAULT_PARTITION} "
            "WHERE created_at >= :low AND created_at < :high"
        ),
        {"low": low, "high": _midnight(last + timedelta(days=1))},
    ).scalars()
    return set(rows)


def _create_partition(connection: Connection, day: date) -> int | None:
    """Create and attach the partition of ``day`` with its rows moved out of
    the default partition; the number moved, or None if it already existed.

    ``CREATE TABLE ... PARTITION OF`` would lock the parent exclusively and
    fail if the default partition held rows of that day; ``ATTACH`` takes the
    parent in SHARE UPDATE EXCLUSIVE mode (inserts and reads go on) and only
    the default partition exclusively.
    """
    name = partition_name(day)
    exists = connection.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar()
    if exists is not None:
        return None
    low, high = _midnight(day), _midnight(day + timedelta(days=1))
    connection.execute(sa.text(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"))
    connection.execute(
        sa.text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    moved = connection.execute(
        sa.text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
            "WHERE created_at >= :low AND created_at < :high "
            f"RETURNING {_COLUMNS}) INSERT INTO {name} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
        ),
        {"low": low, "high": high},
    ).rowcount
    connection.execute(
        sa.text(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
        )
    )
    return moved


def _drop_partition(connection: Connection, day: date) -> bool:
    """Drop the partition of ``day``; False if another run already had."""
    name = partition_name(day)
    if connection.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None:
        return False
    connection.execute(sa.text(f"DROP TABLE {name}"))
    return True


# -- any database -------------------------------------------------------------


def _delete_older(connection: Connection, table: sa.TableClause, cutoff: datetime) -> int:
    return connection.execute(table.delete().where(table.c.created_at < cutoff)).rowcount


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)
