"""Marshmallow schemas of the API's requests and responses.

The same classes validate requests, serialise responses and make the OpenAPI
document (flask-smorest reads them), so the document cannot drift from what
the API does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import url_for
from marshmallow import Schema, ValidationError, fields, validate
from marshmallow_sqlalchemy import SQLAlchemyAutoSchema, auto_field

from ..execlog import LogCategory, LogLevel
from ..models import EXECUTION_STATUSES, STEP_STATUSES, Execution, ExecutionStep
from ..storable import unstorable
from ..workflow.definition import NAME_PATTERN
from ..workflow.service import MAX_IDEMPOTENCY_KEY
from ..queries.records import LogRecordOut
from .completeness import STATES, verdict
from .settings import current_settings

DEFAULT_LIMIT = 50
_identifier = validate.Length(min=1, max=255)


class Text(fields.String):
    """A string PostgreSQL can store: no NUL character, no lone surrogate
    (:mod:`webapp.storable`). Every string a request sends to the database
    is one of these."""

    default_error_messages = {"unstorable": "Must not hold {what}: it cannot be stored."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        what = unstorable(text)
        if what:
            raise self.make_error("unstorable", what=what)
        return text


class FullMatch(validate.Regexp):
    """``validate.Regexp`` on the whole value (``Regexp`` matches only its
    start: ``workflow=a%00b`` passed and reached PostgreSQL)."""

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time with an offset, loaded as UTC (PostgreSQL takes
    offsets up to 15:59 only; Python, and so a client, up to 23:59)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and "\x00" in value:  # fromisoformat takes a trailing NUL
            raise ValidationError("Must not hold a NUL character.")
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise ValidationError("Out of range.") from None


class NoQueryArgs(Schema):
    """The query of an operation that takes no parameters: any is refused
    (400), as every listing refuses those it does not know."""


def limit_in_range(value: int) -> None:
    """``limit`` is 1 to ``API_MAX_LIMIT``; a bigger one is refused, not cut."""
    highest = current_settings().max_limit
    if not 1 <= value <= highest:
        raise ValidationError(f"Must be between 1 and {highest} (API_MAX_LIMIT).")


def _limit() -> fields.Integer:
    return fields.Integer(
        load_default=DEFAULT_LIMIT, validate=limit_in_range,
        metadata={"minimum": 1, "description": "Items per page: 1 to API_MAX_LIMIT (1000 by default)."},
    )


def page_of(item: type[Schema] | Schema, name: str) -> type[Schema]:
    """``{"items": [...], "next": cursor or null}``: every listing's shape."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "next": fields.String(
                required=True, allow_none=True,
                metadata={"description": "Pass as the cursor of the next request; null at the end."},
            ),
        },
        name=name,
    )


# -- executions ---------------------------------------------------------------


class StartExecutionIn(Schema):
    workflow = Text(required=True, validate=validate.Length(min=1, max=100), metadata={"example": "roadmap"})
    input = fields.Dict(load_default=dict, metadata={
        "description": "The workflow's input, a JSON object checked against its runners' schemas.",
        "example": {"goal": "I am new to Python, 1 hour a day, ready in 4 months"},
    })


def printable_ascii(value: str) -> None:
    """HTTP gives a header's bytes as latin-1: anything but printable ASCII
    would be stored as something else than the client meant. (A function,
    not a ``Regexp``: the OpenAPI document keeps the header as it was, which
    the fuzz tests' generated requests depend on.)"""
    if not all(" " <= char <= "~" for char in value):
        raise ValidationError("Must be printable ASCII.")


class IdempotencyHeader(Schema):
    idempotency_key = Text(
        data_key="Idempotency-Key",
        validate=[validate.Length(min=1, max=MAX_IDEMPOTENCY_KEY), printable_ascii],
        metadata={"description": "Starting twice with the same key starts one execution."},
    )


class ExecutionListArgs(Schema):
    status = fields.String(validate=validate.OneOf(EXECUTION_STATUSES))
    workflow = fields.String(validate=FullMatch(f"^{NAME_PATTERN.pattern}$", error="Not a workflow name."))
    created_after = UtcDateTime(metadata={"description": "ISO 8601 with an offset; exclusive."})
    created_before = UtcDateTime(metadata={"description": "ISO 8601 with an offset; exclusive."})
    cursor = fields.String(validate=validate.Length(min=1, max=200),
                           metadata={"description": "The `next` of the previous page."})
    limit = _limit()


class StepOut(SQLAlchemyAutoSchema):
    """A step of an execution, as its model has it."""

    class Meta:
        model = ExecutionStep
        exclude = ("execution_id",)

    status = auto_field(metadata={"enum": list(STEP_STATUSES)})


class ExecutionSummaryOut(SQLAlchemyAutoSchema):
    """An execution as listed (without its steps)."""

    class Meta:
        model = Execution
        exclude = ("steps",)

    status = auto_field(metadata={"enum": list(EXECUTION_STATUSES)})
    heartbeat_at = auto_field(metadata={"description": "the last sign of life of the worker running it"})
    links = fields.Method("_links", dump_only=True, metadata={"type": "object"})

    def _links(self, execution: Any) -> dict[str, str]:
        return execution_links(execution.id)


_STATE = {"enum": list(STATES), "description": (
    "complete: every record stored; running: the run has not reported yet; in_flight: records on "
    "their way; incomplete: records lost for good (reason says how many and why); unreported: the "
    "run never reported (its worker died); pruned: the execution began before the retention cutoff "
    "and its older records were removed (EXECLOG_RETENTION_DAYS)")}


class AttemptLogsOut(Schema):
    """One attempt's log: what its run counted against what is stored."""

    attempt = fields.Integer()
    emitted = fields.Integer(allow_none=True, metadata={"description": "null until the run reports"})
    stored = fields.Integer()
    dropped = fields.Integer(metadata={"description": "dropped for good by the run's process"})
    dead_letters = fields.Integer(metadata={"description": "refused by the database"})
    complete = fields.Boolean()
    state = fields.String(metadata=_STATE)
    reason = fields.String(allow_none=True)


class LogsOut(Schema):
    """The completeness verdict of an execution's log (webapp.api.completeness)."""

    emitted = fields.Integer(allow_none=True, metadata={
        "description": "records its runs logged; null while one has not reported"})
    stored = fields.Integer(metadata={"description": "rows of the trace in execution_logs, all of them"})
    from_elsewhere = fields.Integer(metadata={
        "description": "stored records with no attempt (POST /logs, web requests): in stored, "
                       "never compared with emitted"})
    complete = fields.Boolean(metadata={"description": "over, and every attempt complete"})
    state = fields.String(metadata={**_STATE, "enum": ["pending", *STATES]})
    reason = fields.String(allow_none=True)
    attempts = fields.List(fields.Nested(AttemptLogsOut))


class VerdictField(fields.Nested):
    """An execution's verdict, read when the execution is dumped."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = None) -> Any:
        return verdict(obj)


class ExecutionOut(ExecutionSummaryOut):
    """An execution with its steps and its log's completeness."""

    class Meta(ExecutionSummaryOut.Meta):
        exclude = ()

    steps = fields.List(fields.Nested(StepOut))
    logs = VerdictField(LogsOut, dump_only=True)


def execution_links(execution_id: Any) -> dict[str, str]:
    return {
        "self": url_for("executions.read_execution", execution_id=execution_id),
        "logs": url_for("executions.execution_logs", execution_id=execution_id),
        "events": url_for("events.execution_events", execution_id=execution_id),
        "retry": url_for("executions.retry_execution", execution_id=execution_id),
    }


ExecutionPage = page_of(ExecutionSummaryOut, "ExecutionPage")


# -- logs and events ----------------------------------------------------------


class LogFilterArgs(Schema):
    """The filters of an execution's logs (the listing and the downloads)."""

    level = fields.String(validate=validate.OneOf([v.value for v in LogLevel]),
                          metadata={"description": "Minimum level: this one and the more severe."})
    category = fields.String(validate=validate.OneOf([v.value for v in LogCategory]))
    step = Text(validate=_identifier)
    agent_name = Text(validate=_identifier)
    q = Text(validate=validate.Length(min=1, max=200),
             metadata={"description": "Text the message contains (case-insensitive)."})


class LogListArgs(LogFilterArgs):
    after = fields.UUID(metadata={"description": "The id of the last record seen (the `next` of a page)."})
    limit = _limit()


LogPage = page_of(LogRecordOut, "LogPage")


# -- runners --------------------------------------------------------------------


class PluginOut(Schema):
    kind = fields.String(metadata={"enum": ["runner", "workflow"]})
    name = fields.String()
    source = fields.String()
    distribution = fields.String(allow_none=True)
    version = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": ["ok", "broken", "disabled"]})
    reason = fields.String(allow_none=True)
    steps = fields.List(fields.Raw(), metadata={"description": "A usable workflow's steps."})


PluginPage = page_of(PluginOut, "PluginPage")
