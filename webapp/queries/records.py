"""The JSON form of a log record, one for the API's listings, its event
stream, the downloads and the CLI: made from its model
(marshmallow-sqlalchemy), not written out again column by column. An
event's is :class:`webapp.workflow.notify.EventOut` (the notifier publishes
it)."""

from __future__ import annotations

from marshmallow_sqlalchemy import SQLAlchemyAutoSchema, auto_field

from ..models import ExecutionLog


class LogRecordOut(SQLAlchemyAutoSchema):
    class Meta:
        model = ExecutionLog

    attempt = auto_field(metadata={
        "description": "The run of the execution that logged it; null for records from elsewhere "
                       "(POST /logs, web requests)."})
