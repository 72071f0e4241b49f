"""The API's blueprint class: flask-smorest's, with a stricter request parser.

flask-smorest (webargs underneath) loads every request's query, headers and
body through marshmallow schemas and documents them in the OpenAPI document.
Three rules differ from webargs' defaults: a body that is not
``application/json`` is refused with 415 instead of being ignored, an unknown
query parameter is an error (a misspelt filter must not widen a listing
silently), and a request that does not match its schema gets 400, like every
other malformed request.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import Request
from marshmallow import RAISE
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from .errors import PROBLEM_CONTENT_TYPE, Problem, ProblemSchema


class ApiParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }

    def _raw_load_json(self, req: Request) -> Any:
        body = req.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413
        if not body:
            return core.missing
        if not is_json_request(req):
            raise Problem(415, "unsupported-media-type", "Unsupported Media Type",
                          f"the body must be application/json, not {req.mimetype or 'untyped'}")
        return core.parse_json(body)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ApiParser()

    def problem(self, status: int, description: str) -> Any:
        """Document an error answer (a problem document)."""
        return self.alt_response(status, schema=ProblemSchema, content_type=PROBLEM_CONTENT_TYPE,
                                 description=description)
