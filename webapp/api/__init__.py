"""The HTTP API: blueprints, their marshmallow schemas, and the OpenAPI
document made from them (flask-smorest), served at
``/api/v1/openapi.json`` and rendered at ``/api/v1/docs`` (:mod:`.docs`).

Settings (environment variables of the same name, see ``.env.example``):

=======================  ==============  =========================================
key                      default         meaning
=======================  ==============  =========================================
``API_AUTH``             ``token`` if    ``token``: a bearer token is required
                         API_TOKENS is   (:mod:`.auth`); ``open``: none, loopback
                         set, else       clients only
                         ``open``
``API_TOKENS``           (none)          comma-separated tokens, each with every
                                         scope or ``token:read+start``; more
                                         with ``flask tokens create``
``API_PROTECT_PROBES``   ``0``           ``1``: ``/readyz`` and ``/metrics`` need
                                         a token too
``API_MAX_BODY_BYTES``   ``1048576``     larger request bodies get 413
                                         (Flask's ``MAX_CONTENT_LENGTH``)
``API_MAX_LIMIT``        ``1000``        the largest ``limit`` of a listing
``API_SSE_POLL_INTERVAL``  ``1.0``       seconds between an event stream's polls
``API_SSE_HEARTBEAT``    ``15.0``        seconds of silence before a keepalive
``API_SSE_LOG_DELAY``    ``5.0``         how late a log record may land and still
                                         be streamed (:mod:`.feed`)
``API_SSE_MAX_SECONDS``  ``300``         a stream ends after this long; the client
                                         resumes with ``Last-Event-ID``
``API_SSE_MAX_STREAMS``  ``4``           streams a process serves at once (below
                                         ``GUNICORN_THREADS``; :mod:`.streams`);
                                         half the threads under gunicorn
``API_SSE_MAX_STREAMS_PER_TOKEN``  ``2`` streams one token may hold per process
``API_READY_CACHE_SECONDS``  ``5``       ``/readyz`` checks at most this often
=======================  ==============  =========================================
"""

from __future__ import annotations

import http
import flask_smorest
from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from flask_smorest.utils import prepare_response

from .docs import REDOC_URL
from .errors import PROBLEM_CONTENT_TYPE, ProblemSchema, http_error
from .settings import ApiSettings

SPEC_SETTINGS = {
    "API_TITLE": "webapp",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_REDOC_PATH": "docs",
    # Served from the package (:mod:`.docs`): the page loads nothing from elsewhere.
    "OPENAPI_REDOC_URL": REDOC_URL,
    "API_SPEC_OPTIONS": {
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "info": {"description": "Start workflows, follow them live, read their execution logs. "
                                "Errors are RFC 9457 problem details (application/problem+json)."},
    },
}


class Api(flask_smorest.Api):
    """flask-smorest's Api: errors answered and documented as problem
    details (:mod:`.errors`)."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        """flask-smorest's documented hook for ``HTTPException``: the
        problem document every other error gets too."""
        return http_error(error)

    def _register_responses(self) -> None:
        """The error responses flask-smorest documents by itself (e.g. 400
        for a request that does not match its schema), as problem documents.

        flask-smorest has no public hook for the content type of its error
        responses alone (``DEFAULT_RESPONSE_CONTENT_TYPE`` is every
        response's): this overrides a method of its, and flask-smorest is
        pinned to the minor version it was written for
        (``tests/unit/test_library_pins.py`` fails when the original changes)."""
        errors = [(status.name, status.phrase) for status in http.HTTPStatus if status >= 400]
        for name, description in [*errors, ("DEFAULT_ERROR", "Default error response")]:
            response = {"description": description, "schema": self.ERROR_SCHEMA}
            prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(name, response, lazy=True)


def init_app(app: Flask) -> None:
    from . import auth, docs, errors, health, metrics, request_text, settings, streams
    from .admin import bp as admin_bp
    from .downloads import bp as downloads_bp
    from .events import bp as events_bp
    from .executions import bp as executions_bp
    from .logs import bp as logs_bp
    from .runners import bp as runners_bp

    for key, value in SPEC_SETTINGS.items():
        app.config.setdefault(key, value)
    api_settings = ApiSettings.from_config(app.config)
    app.config.update(api_settings.as_config())
    app.config["MAX_CONTENT_LENGTH"] = api_settings.max_body_bytes
    app.extensions[settings.EXTENSION_KEY] = api_settings
    errors.init_app(app)
    metrics.init_app(app)
    auth.init_app(app)
    request_text.init_app(app)
    health.init_app(app)
    docs.init_app(app)
    app.extensions[streams.EXTENSION_KEY] = streams.slots_from(api_settings)
    api = Api(app)
    for blueprint in (health.bp, metrics.bp, executions_bp, downloads_bp, events_bp, logs_bp, runners_bp,
                      admin_bp):
        api.register_blueprint(blueprint)
