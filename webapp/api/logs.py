"""``POST /api/v1/logs``: log records from outside the process.

For runners and agents that run elsewhere (another service, a script): each
record goes through the ExecutionLogger exactly as if it was logged here, so
the request holds no database connection and returns as soon as the records
are buffered.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from ..execlog import LogCategory, LogLevel
from ..execlog.record import MAX_IDENTIFIER_CHARS
from .blueprint import Blueprint

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
def post_logs(batch: dict[str, Any]) -> ResponseReturnValue:
    """Log records through this process's logger; 202 with their ids."""
    logger = current_app.extensions["execlog"]
    ids = [logger.log(**record).id for record in batch["records"]]
    return {"accepted": len(ids), "ids": ids}
