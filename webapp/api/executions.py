"""``/api/v1/executions``: start, list, read and retry executions, and read
their logs.

Nothing runs in a request: starting and retrying store the execution and
queue it on Celery (:func:`~webapp.workflow.start_execution`,
:func:`~webapp.workflow.resume_execution`). Errors of those services map to
problem documents in :mod:`.errors`.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models import Execution
from ..workflow import resume_execution, start_execution
from .blueprint import Blueprint
from .pagination import bad_cursor, decode_cursor, encode_cursor, page
from ..queries.reads import LogFilter, executions_before, get_execution, log_position, logs_after
from .schemas import (
    ExecutionListArgs,
    ExecutionOut,
    ExecutionPage,
    IdempotencyHeader,
    LogListArgs,
    LogPage,
    StartExecutionIn,
)

bp = Blueprint("executions", __name__, url_prefix="/api/v1",
               description="Workflow executions and their logs.")


@bp.post("/executions")
@bp.requires("start")
@bp.arguments(IdempotencyHeader, location="headers")
@bp.arguments(StartExecutionIn)
@bp.response(202, ExecutionOut, description="Queued: a worker will run it.")
@bp.alt_response(200, schema=ExecutionOut, success=True,
                 description="The execution an earlier request with the same Idempotency-Key started.")
@bp.problem(404, "No such workflow.")
@bp.problem(409, "The workflow is broken or disabled, or the Idempotency-Key was used for another "
                 "request.")
@bp.problem(422, "The input does not fit the workflow.")
@bp.problem(503, "The broker refused the task.")
def start(headers: dict[str, Any], body: dict[str, Any]) -> ResponseReturnValue:
    """Start a workflow.

    The execution is stored as queued and handed to a worker; poll it, or
    follow its events. With an ``Idempotency-Key`` header, a repeated request
    gets the execution the first one started (200) instead of a new one; the
    same key with another workflow or input is a conflict (409).
    """
    key = headers.get("idempotency_key")
    earlier = key is not None and db.session.scalar(
        sa.select(Execution.id).where(Execution.idempotency_key == key)) is not None
    execution = start_execution(body["workflow"], body["input"], idempotency_key=key)
    return execution, 200 if earlier else 202


@bp.get("/executions")
@bp.requires("read")
@bp.arguments(ExecutionListArgs, location="query")
@bp.response(200, ExecutionPage)
def list_executions(args: dict[str, Any]) -> ResponseReturnValue:
    """List executions, newest first."""
    limit = args["limit"]
    after = decode_cursor(args["cursor"]) if "cursor" in args else None
    rows = executions_before(args, limit + 1, after)
    return page(rows, limit, lambda e: encode_cursor(e.created_at, e.id))


@bp.get("/executions/<uuid:execution_id>")
@bp.requires("read")
@bp.response(200, ExecutionOut)
@bp.problem(404, "No such execution.")
def read_execution(execution_id: uuid.UUID) -> ResponseReturnValue:
    """An execution: status, current step, attempts, steps, result or error."""
    return get_execution(execution_id)


@bp.post("/executions/<uuid:execution_id>/retry")
@bp.requires("start")
@bp.response(202, ExecutionOut, description="Queued again, to run from its failed step.")
@bp.problem(404, "No such execution.")
@bp.problem(409, "The execution is not failed.")
@bp.problem(503, "The broker refused the task.")
def retry_execution(execution_id: uuid.UUID) -> ResponseReturnValue:
    """Resume a failed execution from its failed step (steps that succeeded
    are not run again)."""
    return resume_execution(execution_id)


@bp.get("/executions/<uuid:execution_id>/logs")
@bp.requires("read")
@bp.arguments(LogListArgs, location="query")
@bp.response(200, LogPage)
@bp.problem(404, "No such execution.")
def execution_logs(args: dict[str, Any], execution_id: uuid.UUID) -> ResponseReturnValue:
    """The execution's log records in time order, ``(created_at, id)``.

    Page with ``after`` = the ``next`` of the previous page (the id of the
    last record seen). Pages do not shift while records are added: nothing
    is served twice or skipped. A record stored late with an earlier
    ``created_at`` than the cursor (e.g. replayed from a producer's spool
    after a broker outage) sorts before it and is not in later pages; read
    again from the start to see it.
    """
    trace_id = str(get_execution(execution_id).id)
    after = None
    if "after" in args:
        after = log_position(trace_id, args["after"])
        if after is None:
            raise bad_cursor("after", f"execution {execution_id} has no log record {args['after']}")
    log_filter = LogFilter(**{k: v for k, v in args.items() if k not in ("after", "limit")})
    limit = args["limit"]
    rows = logs_after(trace_id, after, limit + 1, log_filter)
    return page(rows, limit, lambda record: str(record.id))
