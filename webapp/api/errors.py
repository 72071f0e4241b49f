"""Every error the API returns is one JSON shape: RFC 9457 problem details.

``{"type", "title", "status", "detail"}``, plus ``errors`` (marshmallow's
field errors, keyed by where the field was: ``json``, ``query``, ``headers``)
when a request did not match its schema. Types are ``about:blank`` when the
HTTP status says it all, else ``urn:webapp:problem:<slug>`` (listed in
docs/API.md). No error shows a stack trace; a 500 is logged with its
traceback on the server only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, jsonify
from marshmallow import Schema, ValidationError, fields
from werkzeug.exceptions import HTTPException

from ..workflow.errors import (
    EnqueueFailed,
    ExecutionNotFound,
    ExecutionNotResumable,
    IdempotencyConflict,
    InvalidInput,
    UnknownWorkflow,
    WorkflowError,
    WorkflowUnavailable,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:webapp:problem:"
#: What a 500 says: the error itself is in the server's log, not in the answer.
SERVER_ERROR_DETAIL = "The server failed to answer; the error is in its log."
#: The status and type of each error of the workflow services.
WORKFLOW_ERRORS: dict[type[WorkflowError], tuple[int, str]] = {
    UnknownWorkflow: (404, "unknown-workflow"),
    ExecutionNotFound: (404, "execution-not-found"),
    WorkflowUnavailable: (409, "workflow-unavailable"),
    ExecutionNotResumable: (409, "execution-not-resumable"),
    IdempotencyConflict: (409, "idempotency-conflict"),
    InvalidInput: (422, "invalid-input"),
    EnqueueFailed: (503, "enqueue-failed"),
}
#: Headers of an HTTP error that the problem response keeps.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
#: Database errors that are the database's state, not a bug: answered 503.
DATABASE_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
#: PostgreSQL's SQLSTATE for a statement cancelled (statement_timeout).
QUERY_CANCELED = "57014"
DATABASE_RETRY_AFTER = 5

log = logging.getLogger(__name__)


class ProblemSchema(Schema):
    """RFC 9457 problem details (documentation; responses are built by
    :func:`problem`)."""

    type = fields.String(metadata={"description": "about:blank, or urn:webapp:problem:<slug>"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(metadata={"description": "Field errors by location (json, query, headers)"})


class Problem(Exception):
    """An error a view raises to answer with a problem document (and
    ``headers``, e.g. ``Retry-After``)."""

    def __init__(self, status: int, slug: str, title: str, detail: str, *,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.extra = status, slug, title, detail, extra
        self.headers = dict(headers or {})


def problem_document(
    status: int, title: str, detail: str | None = None, *, slug: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The body of a problem response (also what gunicorn's own errors
    answer, :mod:`.gunicorn_errors`)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return body


def problem(
    status: int, title: str, detail: str | None = None, *, slug: str | None = None, **extra: Any
) -> Response:
    response = jsonify(problem_document(status, title, detail, slug=slug, **extra))
    response.status_code = status
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def field_errors_detail(errors: Mapping[str, Any]) -> str:
    """A one-line summary naming each field and its first message:
    ``limit (query): Must be ...; workflow (json): Missing data ...``."""
    parts = []
    for location, messages in errors.items():
        if isinstance(messages, Mapping):
            for name, message in messages.items():
                parts.append(f"{name} ({location}): {_first(message)}")
        else:
            parts.append(f"{location}: {_first(messages)}")
    return "; ".join(parts)


def _first(messages: Any) -> str:
    while isinstance(messages, (list, tuple)) and messages:
        messages = messages[0]
    if isinstance(messages, Mapping):
        key, value = next(iter(messages.items()))
        return f"{key}: {_first(value)}"
    return str(messages)


def invalid_request(errors: Mapping[str, Any]) -> Response:
    return problem(400, "Invalid request", field_errors_detail(errors), slug="invalid-request",
                   errors=errors)


def _validation_error(error: ValidationError) -> Response:
    return invalid_request({"json": error.normalized_messages()})


def http_error(error: HTTPException) -> Response:
    """Werkzeug's errors (404, 405, 413, 500, ...) and webargs' aborts."""
    code = error.code or 500
    data = getattr(error, "data", None) or {}
    if "messages" in data:
        response = invalid_request(data["messages"])
    elif code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        response = problem(413, error.name, f"the body is larger than {limit} bytes (API_MAX_BODY_BYTES)")
    elif code >= 500:
        response = problem(code, error.name, SERVER_ERROR_DETAIL)
    else:
        response = problem(code, error.name, error.description)
    original = error.get_response()
    for header in KEPT_HEADERS:
        if original.headers.get(header):
            response.headers[header] = original.headers[header]
    for header, value in (data.get("headers") or {}).items():
        response.headers[header] = value
    return response


def _problem(error: Problem) -> Response:
    response = problem(error.status, error.title, error.detail, slug=error.slug, **error.extra)
    response.headers.update(error.headers)
    return response


def _database_error(error: sa.exc.SQLAlchemyError) -> Response:
    """The database is unreachable, its pool exhausted, or a statement ran
    past ``DB_STATEMENT_TIMEOUT``: 503, never a 500 with a traceback."""
    if getattr(getattr(error, "orig", None), "pgcode", None) == QUERY_CANCELED:
        limit = current_app.config["DB_STATEMENT_TIMEOUT"]
        log.warning("a query ran past DB_STATEMENT_TIMEOUT (%s s): %s", limit, error.statement)
        return problem(503, "Query timeout", f"the query ran longer than DB_STATEMENT_TIMEOUT ({limit:g} s); "
                                             "narrow it (a level, a step, an agent, a longer q)",
                       slug="query-timeout")
    log.warning("database unavailable: %s", error)
    response = problem(503, "Database unavailable", "the database cannot answer now; try again shortly",
                       slug="database-unavailable")
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def _workflow_error(error: WorkflowError) -> Response:
    status, slug = next(v for k, v in WORKFLOW_ERRORS.items() if isinstance(error, k))
    title = slug.replace("-", " ").capitalize()
    if isinstance(error, InvalidInput):
        extra: dict[str, Any] = {"errors": {"json": {"input": error.fields}}} if error.fields else {}
        if error.details:
            extra["details"] = error.details
        return problem(status, title, error.message, slug=slug, **extra)
    if isinstance(error, EnqueueFailed):
        return problem(status, title, str(error), slug=slug, execution_id=str(error.execution_id))
    return problem(status, title, str(error), slug=slug)


def init_app(app: Flask) -> None:
    for error_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(error_class, _database_error)
    app.register_error_handler(ValidationError, _validation_error)
    # HTTPException: flask-smorest's Api registers its handle_http_exception,
    # which is http_error (webapp.api.Api).
    app.register_error_handler(Problem, _problem)
    for error_class in WORKFLOW_ERRORS:
        app.register_error_handler(error_class, _workflow_error)
