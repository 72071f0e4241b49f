"""The tables: executions, their logs, and log records set aside.

``execution_logs`` is written only by :mod:`webapp.execlog.store` (bulk, one
statement a batch) and read by the API; rows are read back ordered by
``(created_at, id)``. ``details`` is JSONB on PostgreSQL and JSON elsewhere.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .execlog.constants import LogCategory, LogLevel
from .extensions import db

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

EXECUTION_STATUSES = ("queued", "running", "succeeded", "failed")


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


class Execution(db.Model):
    """One run of a workflow. Its logs carry its id as their ``trace_id``."""

    __tablename__ = "executions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    workflow: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    input: Mapped[Any] = mapped_column(JSONType, default=dict)
    result: Mapped[Any | None] = mapped_column(JSONType)
    error: Mapped[Any | None] = mapped_column(JSONType)
    current_step: Mapped[str | None] = mapped_column(sa.String(255))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utcnow, onupdate=utcnow
    )
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: Stamped by the worker while it runs the execution
    #: (:mod:`webapp.workflow.heartbeat`); a stale one means the worker is gone.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: Read-only (the engine writes steps itself); for the API's views.
    steps: Mapped[list[ExecutionStep]] = relationship(
        "ExecutionStep", viewonly=True, order_by="ExecutionStep.position"
    )

    __table_args__ = (
        sa.CheckConstraint(
            sa.column("status").in_(EXECUTION_STATUSES), name="status_known"
        ),
        sa.Index("ix_executions_status_created_at", "status", "created_at"),
        sa.Index("ix_executions_created_at", "created_at"),
    )


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


LOG_CHECKS = _log_checks()


class ExecutionLog(db.Model):
    """One structured log record of an execution step.

    The primary key is ``(id, created_at)``: on PostgreSQL the table is
    partitioned by ``created_at`` (migration 0003, :mod:`webapp.execlog.retention`)
    and a partition key must be part of every unique constraint. A record's
    ``created_at`` is fixed at ``log()`` time, so the pair identifies it as
    well as its id alone.
    """

    __tablename__ = "execution_logs"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    trace_id: Mapped[str] = mapped_column(sa.String(255))
    level: Mapped[str] = mapped_column(sa.String(16))
    category: Mapped[str] = mapped_column(sa.String(32))
    message: Mapped[str] = mapped_column(sa.Text)
    step: Mapped[str | None] = mapped_column(sa.String(255))
    agent_name: Mapped[str | None] = mapped_column(sa.String(255))
    roadmap_id: Mapped[str | None] = mapped_column(sa.String(255))
    concept_id: Mapped[str | None] = mapped_column(sa.String(255))
    details: Mapped[Any | None] = mapped_column(JSONType)
    duration_ms: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    #: The run of the execution that logged it (``executions.attempts`` at
    #: the time); NULL for records from elsewhere (``POST /logs``, requests).
    attempt: Mapped[int | None] = mapped_column(sa.Integer)

    __table_args__ = (
        # "the logs of one trace in time order": the API's main read.
        sa.Index("ix_execution_logs_trace_id_created_at_id", "trace_id", "created_at", "id"),
        sa.Index("ix_execution_logs_created_at", "created_at"),
        # The worker checks the types of a row; these check its values while
        # COPY stores it (webapp.execlog.wire), so that a refused row is
        # dead-lettered on its own (migration 0006).
        *LOG_CHECKS,
    )


class DeadLetter(db.Model):
    """A log record (or a whole message) the worker could not store, with why."""

    __tablename__ = "execution_log_dead_letters"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(sa.String(32))
    reason: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[str] = mapped_column(sa.Text)
    #: The trace and attempt the refused row names, when it names them: a
    #: record lost for good to an execution's log (migration 0006).
    trace_id: Mapped[str | None] = mapped_column(sa.String(255))
    attempt: Mapped[int | None] = mapped_column(sa.Integer)

    __table_args__ = (sa.Index("ix_execution_log_dead_letters_trace_id", "trace_id"),)


STEP_STATUSES = ("pending", "running", "succeeded", "failed", "skipped")


class ExecutionStep(db.Model):
    """One step of an execution: its status, tries, output or error.

    Written by the WorkflowBrain; a resumed execution reloads the outputs of
    its succeeded steps from here instead of running them again.
    """

    __tablename__ = "execution_steps"

    execution_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(100))
    runner: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    output: Mapped[Any | None] = mapped_column(JSONType)
    error: Mapped[Any | None] = mapped_column(JSONType)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration_ms: Mapped[float | None] = mapped_column(sa.Float)

    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(STEP_STATUSES), name="status_known"),
        sa.UniqueConstraint("execution_id", "name", name="uq_execution_steps_execution_id_name"),
    )


class ExecutionLogCount(db.Model):
    """What one run (attempt) of an execution logged, as the run counted it.

    Written once by the run when it ends, after its logger flushed
    (:mod:`webapp.workflow.tally`): ``emitted`` records, of which
    ``dropped`` were dropped for good by its process. The API compares them
    with what ``execution_logs`` holds (:mod:`webapp.api.completeness`).
    """

    __tablename__ = "execution_log_counts"

    execution_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    emitted: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    dropped: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    reported_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("emitted >= 0 AND dropped >= 0", name="counts_sane"),
    )


class ExecutionEvent(db.Model):
    """A progress event of an execution (started, step succeeded, ...).

    ``id`` increases with every event, so it is the SSE event id a client
    resumes from (``Last-Event-ID``); the events of one execution are read
    ordered by it.
    """

    __tablename__ = "execution_events"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    execution_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("executions.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(32))
    data: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (sa.Index("ix_execution_events_execution_id_id", "execution_id", "id"),)


#: What a token may do (webapp.api.scopes): ``read`` executions, logs,
#: runners (and the probes when protected), ``start`` and retry executions,
#: ``ingest`` log records, ``admin`` manage tokens.
TOKEN_SCOPES = ("read", "start", "ingest", "admin")


class ApiToken(db.Model):
    """A bearer token of the HTTP API (``flask tokens create``): only its
    SHA-256 is stored; the token itself is shown once, when it is made.
    ``scopes`` is space-separated (tokens made before scopes have all)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    scopes: Mapped[str] = mapped_column(sa.String(100), default=" ".join(TOKEN_SCOPES),
                                        server_default=" ".join(TOKEN_SCOPES))
