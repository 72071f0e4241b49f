"""Reads of executions, their logs and their events, shared by the API's
views, its event stream, the pages and the ``flask executions`` commands.

Logs are read in ``(created_at, id)`` order, the order the table's index
``(trace_id, created_at, id)`` serves. Every value reaches SQL as a bound
parameter; text search escapes LIKE's wildcards.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..execlog.constants import LEVEL_RANK
from ..extensions import db
from ..models import Execution, ExecutionEvent, ExecutionLog
from ..workflow.errors import ExecutionNotFound

#: A log record's place in the read order.
Position = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class LogFilter:
    level: str | None = None
    category: str | None = None
    step: str | None = None
    agent_name: str | None = None
    q: str | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        found: list[sa.ColumnElement[bool]] = []
        if self.level is not None:
            found.append(ExecutionLog.level.in_(levels_from(self.level)))
        for column, value in ((ExecutionLog.category, self.category), (ExecutionLog.step, self.step),
                              (ExecutionLog.agent_name, self.agent_name)):
            if value is not None:
                found.append(column == value)
        if self.q is not None:
            found.append(ExecutionLog.message.ilike(f"%{escape_like(self.q)}%", escape="\\"))
        return found


def levels_from(minimum: str) -> list[str]:
    """The levels at or above ``minimum``."""
    return [level for level, rank in LEVEL_RANK.items() if rank >= LEVEL_RANK[minimum]]


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def get_execution(execution_id: uuid.UUID) -> Execution:
    execution = db.session.get(Execution, execution_id)
    if execution is None:
        raise ExecutionNotFound(f"no execution {execution_id}")
    return execution


def executions_before(args: Mapping[str, Any], limit: int,
                      after: Position | None = None) -> Sequence[Execution]:
    """Up to ``limit`` executions, newest first, that match the listing's
    ``args`` (``status``, ``workflow``, ``created_after``,
    ``created_before``), after the one at ``after`` (a decoded cursor)."""
    query = sa.select(Execution)
    for name in ("status", "workflow"):
        if name in args:
            query = query.where(getattr(Execution, name) == args[name])
    if "created_after" in args:
        query = query.where(Execution.created_at > args["created_after"])
    if "created_before" in args:
        query = query.where(Execution.created_at < args["created_before"])
    if after is not None:
        query = query.where(sa.tuple_(Execution.created_at, Execution.id) < sa.tuple_(*after))
    return db.session.scalars(
        query.order_by(Execution.created_at.desc(), Execution.id.desc()).limit(limit)
    ).all()


def log_position(trace_id: str, log_id: uuid.UUID) -> Position | None:
    """Where record ``log_id`` of the trace is in the read order (None if
    the trace has no such record)."""
    created_at = db.session.scalar(
        sa.select(ExecutionLog.created_at).where(ExecutionLog.trace_id == trace_id, ExecutionLog.id == log_id)
    )
    return None if created_at is None else (created_at, log_id)


def logs_after(
    trace_id: str,
    after: Position | None,
    limit: int,
    log_filter: LogFilter = LogFilter(),
    since: datetime | None = None,
) -> Sequence[ExecutionLog]:
    """Up to ``limit`` records of the trace after ``after``, in order;
    ``since`` also bounds them by ``created_at`` (inclusive)."""
    query = sa.select(ExecutionLog).where(ExecutionLog.trace_id == trace_id, *log_filter.clauses())
    if after is not None:
        query = query.where(sa.tuple_(ExecutionLog.created_at, ExecutionLog.id) > sa.tuple_(*after))
    if since is not None:
        query = query.where(ExecutionLog.created_at >= since)
    query = query.order_by(ExecutionLog.created_at, ExecutionLog.id).limit(limit)
    return db.session.scalars(query).all()


def events_after(execution_id: uuid.UUID, after: int) -> Sequence[ExecutionEvent]:
    return db.session.scalars(
        sa.select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.id > after)
        .order_by(ExecutionEvent.id)
    ).all()


def late_logs(
    trace_id: str, since: datetime, floor: Position | None, before: Position, exclude: set[uuid.UUID]
) -> Sequence[ExecutionLog]:
    """Records of the trace from ``since`` up to (not including) ``before``,
    above ``floor``, but for the ids in ``exclude``: those that landed after
    records ordered behind them were read."""
    position = sa.tuple_(ExecutionLog.created_at, ExecutionLog.id)
    query = sa.select(ExecutionLog).where(
        ExecutionLog.trace_id == trace_id, ExecutionLog.created_at >= since, position < sa.tuple_(*before)
    )
    if floor is not None:
        query = query.where(position > sa.tuple_(*floor))
    if exclude:
        query = query.where(ExecutionLog.id.not_in(exclude))
    return db.session.scalars(query.order_by(ExecutionLog.created_at, ExecutionLog.id)).all()
