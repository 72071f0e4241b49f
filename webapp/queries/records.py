"""The JSON form of a log record and of a progress event, one for the API's
listings, its event stream, the downloads and the CLI."""

from __future__ import annotations

from marshmallow import Schema, fields

from ..workflow.notify import EVENT_TYPES


class LogRecordOut(Schema):
    id = fields.UUID()
    trace_id = fields.String()
    level = fields.String()
    category = fields.String()
    message = fields.String()
    step = fields.String(allow_none=True)
    agent_name = fields.String(allow_none=True)
    roadmap_id = fields.String(allow_none=True)
    concept_id = fields.String(allow_none=True)
    details = fields.Raw(allow_none=True)
    duration_ms = fields.Float(allow_none=True)
    attempt = fields.Integer(allow_none=True, metadata={
        "description": "The run of the execution that logged it; null for records from elsewhere "
                       "(POST /logs, web requests)."})
    created_at = fields.DateTime()


class EventOut(Schema):
    id = fields.Integer()
    execution_id = fields.UUID()
    type = fields.String(metadata={"enum": list(EVENT_TYPES)})
    data = fields.Raw()
    created_at = fields.DateTime()
