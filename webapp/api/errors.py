"""Every error the API returns is one JSON shape: RFC 9457 problem details.

``{"type", "title", "status", "detail"}``, plus ``errors`` (marshmallow's
field errors, keyed by where the field was: ``json``, ``query``, ``headers``)
when a request did not match its schema. Types are ``about:blank`` when the
HTTP status says it all, else ``urn:webapp:problem:<slug>`` (listed in
docs/API.md). No error shows a stack trace; a 500 is logged with its
traceback on the server only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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


class ProblemSchema(Schema):
    """RFC 9457 problem details (documentation; responses are built by
    :func:`problem`)."""

    type = fields.String(metadata={"description": "about:blank, or urn:webapp:problem:<slug>"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(metadata={"description": "Field errors by location (json, query, headers)"})


class Problem(Exception):
    """An error a view raises to answer with a problem document."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.extra = status, slug, title, detail, extra


def problem(
    status: int, title: str, detail: str | None = None, *, slug: str | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = jsonify(body)
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


def _request_invalid(errors: Mapping[str, Any]) -> Response:
    return problem(400, "Invalid request", field_errors_detail(errors), slug="invalid-request",
                   errors=errors)


def _validation_error(error: ValidationError) -> Response:
    return _request_invalid({"json": error.normalized_messages()})


def _http_error(error: HTTPException) -> Response:
    """Werkzeug's errors (404, 405, 413, 500, ...) and webargs' aborts."""
    code = error.code or 500
    data = getattr(error, "data", None) or {}
    exc = getattr(error, "exc", None)  # webargs' abort keeps the exception it caught
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        response = problem(400, "Malformed JSON", f"the body is not valid JSON: {exc}", slug="malformed-json")
    elif "messages" in data:
        response = _request_invalid(data["messages"])
    elif code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        response = problem(413, error.name, f"the body is larger than {limit} bytes (API_MAX_BODY_BYTES)")
    elif code >= 500:
        response = problem(code, error.name, "The server failed to answer; the error is in its log.")
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
    return problem(error.status, error.title, error.detail, slug=error.slug, **error.extra)


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
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Problem, _problem)
    for error_class in WORKFLOW_ERRORS:
        app.register_error_handler(error_class, _workflow_error)
