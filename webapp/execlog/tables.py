"""The tables the execution log writes: ``execution_logs`` and
``execution_log_dead_letters``, defined here so that the logger depends on
nothing above it.

They live on :data:`metadata`, which the app's Flask-SQLAlchemy shares
(``webapp.extensions``), so that migrations see every table and the app's
models (``webapp.models.ExecutionLog``, ``DeadLetter``) map onto these very
tables for its reads. ``execution_logs`` is written only by :mod:`.store`
(bulk, one statement a batch); rows are read back ordered by
``(created_at, id)``. ``details`` is JSONB on PostgreSQL and JSON elsewhere.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .constants import LogCategory, LogLevel

#: Stable constraint names, so that migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The app's one MetaData (its Flask-SQLAlchemy ``db`` is made with it).
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: A big integer key that SQLite can autoincrement.
BigKey = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(sa.types.TypeDecorator):
    """A moment, stored as ``timestamp with time zone`` and always read back
    as an aware datetime in UTC.

    SQLite keeps no offset and gives naive datetimes back, and PostgreSQL
    answers in the session's ``TimeZone``: without this, the API served
    ``2026-12-03T12:38:03.147339`` (no offset) on the embedded default and
    local offsets on a server set to another zone. Naive values are taken as
    UTC; aware ones are converted to UTC before they are stored.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _log_checks() -> tuple[sa.CheckConstraint, ...]:
    def one_of(values: Any) -> str:
        return ", ".join(f"'{v.value}'" for v in values)

    optional = ("step", "agent_name", "roadmap_id", "concept_id")
    return (
        sa.CheckConstraint(f"level IN ({one_of(LogLevel)})", name="level_known"),
        sa.CheckConstraint(f"category IN ({one_of(LogCategory)})", name="category_known"),
        sa.CheckConstraint("length(trace_id) BETWEEN 1 AND 255", name="trace_id_length"),
        sa.CheckConstraint("length(message) >= 1", name="message_not_empty"),
        sa.CheckConstraint(" AND ".join(f"length({c}) <= 255" for c in optional),
                           name="identifiers_length"),
        # NaN and the infinities lie outside (PostgreSQL orders NaN above all).
        sa.CheckConstraint("duration_ms BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308",
                           name="duration_finite"),
        sa.CheckConstraint("attempt >= 0", name="attempt_not_negative"),
    )


#: The value checks of a log row: the worker checks a row's types, these
#: check its values while COPY stores it (:mod:`.wire`), so that a refused
#: row is dead-lettered on its own (migration 0006).
LOG_CHECKS = _log_checks()

#: One structured log record of an execution step. The primary key is
#: ``(id, created_at)``: on PostgreSQL the table is partitioned by
#: ``created_at`` (migration 0003, :mod:`.retention`) and a partition key must
#: be part of every unique constraint. A record's ``created_at`` is fixed at
#: ``log()`` time, so the pair identifies it as well as its id alone.
execution_logs = sa.Table(
    "execution_logs", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("trace_id", sa.String(255), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("step", sa.String(255)),
    sa.Column("agent_name", sa.String(255)),
    sa.Column("roadmap_id", sa.String(255)),
    sa.Column("concept_id", sa.String(255)),
    sa.Column("details", JSONType),
    sa.Column("duration_ms", sa.Float),
    sa.Column("created_at", UtcDateTime, primary_key=True),
    # The run of the execution that logged it (executions.attempts at the
    # time); NULL for records from elsewhere (POST /logs, requests).
    sa.Column("attempt", sa.Integer),
    # "the logs of one trace in time order": the API's main read.
    sa.Index("ix_execution_logs_trace_id_created_at_id", "trace_id", "created_at", "id"),
    sa.Index("ix_execution_logs_created_at", "created_at"),
    *LOG_CHECKS,
)

#: A log record (or a whole message) the worker could not store, with why;
#: with the trace and attempt the refused row names, when it names them (a
#: record lost for good to an execution's log, migration 0006).
dead_letters = sa.Table(
    "execution_log_dead_letters", metadata,
    sa.Column("id", BigKey, primary_key=True),
    sa.Column("received_at", UtcDateTime, nullable=False, default=utcnow),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("trace_id", sa.String(255)),
    sa.Column("attempt", sa.Integer),
    sa.Index("ix_execution_log_dead_letters_trace_id", "trace_id"),
)
