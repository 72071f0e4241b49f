"""``POST /api/v1/logs``: log records from outside the process.

For runners and agents that run elsewhere (another service, a script): each
record goes through the ExecutionLogger exactly as if it was logged here, so
the request holds no database connection and returns as soon as the records
are buffered.
"""

from __future__ import annotations

import math
from typing import Any

from flask import current_app
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from ..execlog import LogCategory, LogLevel
from ..execlog.fields import MAX_IDENTIFIER_CHARS
from .blueprint import Blueprint
from .errors import problem

bp = Blueprint("logs", __name__, url_prefix="/api/v1", description="Log records from outside the process.")

MAX_RECORDS_PER_REQUEST = 1000
_identifier = validate.Length(min=1, max=MAX_IDENTIFIER_CHARS)


class LogRecordIn(Schema):
    trace_id = fields.String(required=True, validate=_identifier)
    level = fields.String(required=True, validate=validate.OneOf([v.value for v in LogLevel]))
    category = fields.String(required=True, validate=validate.OneOf([v.value for v in LogCategory]))
    message = fields.String(required=True, validate=validate.Length(min=1))
    step = fields.String(load_default=None, allow_none=True, validate=_identifier)
    agent_name = fields.String(load_default=None, allow_none=True, validate=_identifier)
    roadmap_id = fields.String(load_default=None, allow_none=True, validate=_identifier)
    concept_id = fields.String(load_default=None, allow_none=True, validate=_identifier)
    details = fields.Dict(load_default=None, allow_none=True)
    duration_ms = fields.Float(load_default=None, allow_none=True, allow_nan=False)


class LogBatchIn(Schema):
    records = fields.List(
        fields.Nested(LogRecordIn), required=True,
        validate=validate.Length(min=1, max=MAX_RECORDS_PER_REQUEST),
    )


class LogBatchOut(Schema):
    accepted = fields.Integer()
    ids = fields.List(fields.String())


@bp.post("/logs")
@bp.requires("ingest")
@bp.arguments(LogBatchIn)
@bp.response(202, LogBatchOut)
@bp.problem(503, "The log spool is full: try again after `Retry-After` seconds.")
def post_logs(batch: dict[str, Any]) -> ResponseReturnValue:
    """Log records through this process's logger; 202 with their ids, or 503
    with ``Retry-After`` while the spool is at its cap (they would be dropped)."""
    logger = current_app.extensions["execlog"]
    if logger.spool_full:
        response = problem(503, "Log spool full",
                           "this process's log spool is at EXECLOG_SPOOL_MAX_BYTES (the broker is "
                           "probably unreachable): the records were not accepted; send them again later",
                           slug="spool-full")
        response.headers["Retry-After"] = str(math.ceil(logger.settings.probe_interval))
        return response
    ids = [logger.log(**record).id for record in batch["records"]]
    return {"accepted": len(ids), "ids": ids}
