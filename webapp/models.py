"""The app's models: executions and their steps, events, log counts and
API tokens, and the ORM view of the execution log's own tables.

``execution_logs`` and ``execution_log_dead_letters`` belong to the execution
log (:mod:`webapp.execlog.tables`, which writes them in bulk); the models
:class:`ExecutionLog` and :class:`DeadLetter` map onto those very tables for
the API's reads. Rows of a log are read back ordered by ``(created_at, id)``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .execlog import tables
from .execlog.tables import JSONType, UtcDateTime, utcnow
from .extensions import db

__all__ = ["ApiToken", "DeadLetter", "Execution", "ExecutionEvent", "ExecutionLog", "ExecutionLogCount",
           "ExecutionStep", "JSONType", "UtcDateTime", "utcnow"]

EXECUTION_STATUSES = ("queued", "running", "succeeded", "failed")


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


class ExecutionLog(db.Model):
    """One structured log record of an execution step (the table is the
    execution log's: :data:`webapp.execlog.tables.execution_logs`)."""

    __table__ = tables.execution_logs


class DeadLetter(db.Model):
    """A log record (or a whole message) the worker could not store, with why
    (:data:`webapp.execlog.tables.dead_letters`)."""

    __table__ = tables.dead_letters


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
    emitted: Mapped[int] = mapped_column(tables.BigKey)
    dropped: Mapped[int] = mapped_column(tables.BigKey)
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

    id: Mapped[int] = mapped_column(tables.BigKey, primary_key=True)
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

    id: Mapped[int] = mapped_column(tables.BigKey, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    scopes: Mapped[str] = mapped_column(sa.String(100), default=" ".join(TOKEN_SCOPES),
                                        server_default=" ".join(TOKEN_SCOPES))
