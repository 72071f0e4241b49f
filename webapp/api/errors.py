"""Every error the API returns is one JSON shape: RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def _validation_error(error: ValidationError) -> Response:
    return problem(400, "Invalid request", "The request body does not match the schema.",
                   errors=error.normalized_messages())


def _http_error(error: HTTPException) -> Response:
    response = problem(error.code or 500, error.name, error.description)
    for header in ("Allow", "Retry-After"):
        if error.get_response().headers.get(header):
            response.headers[header] = error.get_response().headers[header]
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(HTTPException, _http_error)
