"""Who may call the API.

``API_AUTH=token`` (the default when ``API_TOKENS`` is set): every request
needs ``Authorization: Bearer <token>`` with a token of :mod:`.tokens`;
without one it gets 401 and ``WWW-Authenticate: Bearer``.

``API_AUTH=open`` (the default otherwise, so that ``make run`` works as it
is): no token is asked, and so the API serves loopback clients only. It
answers 403 to any other client, and gunicorn refuses to start open on an
address that is not loopback (:func:`open_bind_problem`, called by
``docker/gunicorn.conf.py``).

Always open: ``/healthz`` and the OpenAPI document with its page. ``/readyz``
and ``/metrics`` are open too unless ``API_PROTECT_PROBES=1``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app, request

from .errors import problem
from .tokens import EXTENSION_KEY, TokenStore, TokenStoreUnavailable, current_store

MODES = ("open", "token")
ALWAYS_OPEN = ("/healthz", "/api/v1/openapi.json", "/api/v1/docs")
PROBES = ("/readyz", "/metrics")
CHALLENGE = 'Bearer realm="webapp"'


def init_app(app: Flask) -> None:
    if app.config["API_AUTH"] not in MODES:
        raise ValueError(f"API_AUTH must be one of {', '.join(MODES)}; got {app.config['API_AUTH']!r}")
    config = app.config
    app.extensions[EXTENSION_KEY] = TokenStore(
        config["API_TOKENS"], config["SQLALCHEMY_DATABASE_URI"], f"{config['DB_APPLICATION_NAME']}-auth"
    )
    app.before_request(check_access)


def check_access() -> Response | None:
    """``before_request``: None to go on, or the refusal."""
    config = current_app.config
    if request.path in ALWAYS_OPEN or (request.path in PROBES and not config["API_PROTECT_PROBES"]):
        return None
    if config["API_AUTH"] == "open":
        if is_loopback(request.remote_addr):
            return None
        return problem(403, "Forbidden", "API_AUTH=open serves clients on this host only; "
                                         "use API_AUTH=token to serve others")
    return _check_token(request.headers.get("Authorization", ""))


def _check_token(header: str) -> Response | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("a bearer token is required: Authorization: Bearer <token>", CHALLENGE)
    try:
        if current_store().valid(token.strip()):
            return None
    except TokenStoreUnavailable as exc:
        return problem(503, "Service Unavailable", f"tokens cannot be checked now: {exc}")
    return _unauthorized("the token is not valid (unknown or revoked)", f'{CHALLENGE}, error="invalid_token"')


def _unauthorized(detail: str, challenge: str) -> Response:
    response = problem(401, "Unauthorized", detail)
    response.headers["WWW-Authenticate"] = challenge
    return response


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_bind_problem(config: dict[str, Any], addresses: Iterable[Any]) -> str | None:
    """Why the server must not start with ``config`` on ``addresses``
    (gunicorn's ``(host, port)`` pairs, or socket paths), or None."""
    if config["API_AUTH"] != "open":
        return None
    public = [f"{a[0]}:{a[1]}" for a in addresses if isinstance(a, tuple) and not is_loopback(a[0])]
    if not public:
        return None
    return (f"refusing to serve the API open (API_AUTH=open, no token asked) on {', '.join(public)}: "
            "bind to 127.0.0.1, or set API_AUTH=token with API_TOKENS or `flask tokens create`")
