"""Who may call the API, and what they may do.

Every request but the always-open ones is authenticated into an
:class:`~.scopes.Identity` (:func:`authenticate`), kept in ``g.identity``,
then authorized: the view's scope (:meth:`~.blueprint.Blueprint.requires`;
a view that declares none needs ``admin``) must be one of the identity's.
A caller without it gets 403 naming the scope.

``API_AUTH=token`` (the default when ``API_TOKENS`` is set): every request
needs ``Authorization: Bearer <token>`` with a token of :mod:`.tokens`;
without one it gets 401 and ``WWW-Authenticate: Bearer``.

``API_AUTH=open`` (the default otherwise, so that ``make run`` works as it
is): no token is asked, every scope is granted, and so the API serves
requests made on this host only. It answers 403 to a peer that is not
loopback, to a ``Host`` that is not loopback (a DNS-rebinding page in a
browser sends its own host name), and to any request with a forwarding
header (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``, ``Via``): behind a
reverse proxy every peer is loopback. gunicorn refuses to start open on an
address that is not loopback (:func:`open_bind_problem`, called by
``docker/gunicorn.conf.py``).

In token mode the pages (``/ui/``) sign a person in once with a token and
keep a browser session (:mod:`.session`): a request that carries no
``Authorization`` header may use that session instead, with the scopes of
the token it signed in with, and a state-changing one needs the session's
CSRF token as well. A page refused for want of a session is sent to the
sign-in page rather than answered 401.

In every mode, a state-changing request that a browser sends from a page of
another origin (its ``Origin`` header names another host) is refused: in
open mode nothing else would stop a web page from driving the API of the
machine its reader sits at.

Always open: ``/healthz``, the OpenAPI document with its page, the sign-in
page and the pages' static files. ``/readyz`` and ``/metrics`` are open too
unless ``API_PROTECT_PROBES=1`` (then they need ``read``); ``/readyz`` shows
its details only to an identity with ``read`` (:func:`request_identity`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, g, redirect, request, url_for

from ..config import connect_args
from . import session
from .errors import problem
from .scopes import OPEN_IDENTITY, Identity
from .settings import EXTENSION_KEY as SETTINGS_KEY
from .settings import ApiSettings, current_settings
from .tokens import EXTENSION_KEY, TokenStore, TokenStoreUnavailable, current_store

ALWAYS_OPEN = ("/healthz", "/api/v1/openapi.json", "/api/v1/docs", "/ui/login")
ALWAYS_OPEN_PREFIXES = ("/api/v1/docs/", "/ui/static/")
PROBES = ("/readyz", "/metrics")
#: Blueprints of pages a person opens: a refusal sends them to sign in.
BROWSER_BLUEPRINTS = ("ui",)
CHALLENGE = 'Bearer realm="webapp"'
#: A view that declares no scope needs this one: nothing is open by mistake.
DEFAULT_SCOPE = "admin"
#: Headers a proxy or a CDN adds; open mode refuses requests that have any,
#: and any header starting with ``X-Forwarded``.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
                      "X-Forwarded-Port", "X-Real-IP", "Via", "Forwarded-For", "X-Client-IP", "Client-IP",
                      "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Cluster-Client-IP",
                      "X-Original-Forwarded-For", "X-ProxyUser-Ip", "X-Originating-IP", "X-Remote-IP",
                      "X-Remote-Addr")
FORWARDING_PREFIX = "x-forwarded"


class Refusal(Exception):
    """Authentication failed: ``response`` says why."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def init_app(app: Flask) -> None:
    config = app.config
    url = config["SQLALCHEMY_DATABASE_URI"]
    app.extensions[EXTENSION_KEY] = TokenStore(
        list(app.extensions[SETTINGS_KEY].tokens), url,
        connect_args(url, config, f"{config['DB_APPLICATION_NAME']}-auth"))
    app.before_request(check_access)


def check_access() -> Response | None:
    """``before_request``: None to go on, or the refusal."""
    if request.method not in session.SAFE_METHODS and _foreign_origin():
        return problem(403, "Forbidden", "a state-changing request from a page of another origin")
    if request.path in ALWAYS_OPEN or request.path.startswith(ALWAYS_OPEN_PREFIXES):
        return None
    if request.path in PROBES and not current_settings().protect_probes:
        return None
    try:
        g.identity = authenticate(request)
    except Refusal as refusal:
        return refusal.response
    scope = required_scope()
    if scope is None or g.identity.allows(scope):
        return None
    return _missing_scope(g.identity, scope)


def authenticate(req: Request) -> Identity:
    """The caller of ``req``: a bearer token, else the browser session;
    ``Refusal`` when it may not call at all."""
    if current_settings().auth == "open":
        _check_open_mode(req)
        return OPEN_IDENTITY
    try:
        header = req.headers.get("Authorization")
        return _token_identity(header) if header is not None else _session_identity(req)
    except TokenStoreUnavailable as exc:
        raise Refusal(problem(503, "Service Unavailable", f"tokens cannot be checked now: {exc}")) from None


def _token_identity(header: str) -> Identity:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(_unauthorized("a bearer token is required: Authorization: Bearer <token>", CHALLENGE))
    identity = current_store().identify(token.strip())
    if identity is None:
        raise Refusal(_unauthorized("the token is not valid (unknown or revoked)",
                                    f'{CHALLENGE}, error="invalid_token"'))
    return identity


def _session_identity(req: Request) -> Identity:
    identity = session.session_identity()
    if identity is None:
        if req.blueprint in BROWSER_BLUEPRINTS:
            raise Refusal(redirect(url_for("ui.login", next=req.full_path.rstrip("?"))))
        raise Refusal(_unauthorized("a bearer token is required: Authorization: Bearer <token>", CHALLENGE))
    if not session.csrf_ok():
        raise Refusal(problem(403, "Forbidden", f"a state-changing request of a browser session needs "
                                                f"its CSRF token ({session.CSRF_HEADER} header)"))
    return identity


def _foreign_origin() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not a browser, or a same-origin request of an older one
    try:
        return origin == "null" or urlsplit(origin).netloc != request.host
    except ValueError:  # not a URL at all ("http://[zz]"): not this origin
        return True


def request_identity() -> Identity | None:
    """Who calls, for a view that is open but says more to some callers
    (``/readyz``): the identity, or None for an anonymous or refused one."""
    identity = g.get("identity")
    if identity is not None:
        return identity  # type: ignore[no-any-return]
    try:
        return authenticate(request)
    except Refusal:
        return None


def current_identity() -> Identity:
    """The identity ``check_access`` found for this request."""
    return g.identity  # type: ignore[no-any-return]


def required_scope() -> str | None:
    """The scope of the view this request goes to (None: no view, the
    answer is a 404 or a 405)."""
    if request.url_rule is None or request.endpoint is None:
        return None
    view = current_app.view_functions.get(request.endpoint)
    return getattr(view, "required_scope", DEFAULT_SCOPE)


def _check_open_mode(req: Request) -> None:
    if not is_loopback(req.remote_addr):
        raise Refusal(problem(403, "Forbidden", "API_AUTH=open serves clients on this host only; "
                                                "use API_AUTH=token to serve others"))
    forwarded = [name for name in FORWARDING_HEADERS if name in req.headers]
    forwarded += [name for name, _value in req.headers.items()
                  if name.lower().startswith(FORWARDING_PREFIX) and name not in forwarded]
    if forwarded:
        raise Refusal(problem(403, "Forbidden", f"API_AUTH=open refuses requests through a proxy "
                                                f"({', '.join(forwarded)}); use API_AUTH=token behind one"))
    if not req.headers.get("Host") or not is_loopback(host_name(req.host)):
        raise Refusal(problem(403, "Forbidden", f"API_AUTH=open serves requests to this host only: "
                                                f"the Host header must be localhost, 127.0.0.1 or [::1], "
                                                f"not {req.host!r}"))


def _missing_scope(identity: Identity, scope: str) -> Response:
    held = ", ".join(sorted(identity.scopes)) or "none"
    response = problem(403, "Forbidden", f"this operation needs the scope '{scope}'; the token "
                                         f"{identity.name} has: {held}",
                       slug="missing-scope", required_scope=scope)
    response.headers["WWW-Authenticate"] = f'{CHALLENGE}, error="insufficient_scope", scope="{scope}"'
    return response


def _unauthorized(detail: str, challenge: str) -> Response:
    response = problem(401, "Unauthorized", detail)
    response.headers["WWW-Authenticate"] = challenge
    return response


def host_name(host: str) -> str:
    """The name of a ``Host`` header, without its port."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_bind_problem(config: Mapping[str, Any], addresses: Iterable[Any]) -> str | None:
    """Why the server must not start with ``config`` on ``addresses``
    (gunicorn's ``(host, port)`` pairs, or socket paths), or None."""
    if ApiSettings.from_config(config).auth != "open":
        return None
    public = [f"{a[0]}:{a[1]}" for a in addresses if isinstance(a, tuple) and not is_loopback(a[0])]
    if not public:
        return None
    return (f"refusing to serve the API open (API_AUTH=open, no token asked) on {', '.join(public)}: "
            "bind to 127.0.0.1, or set API_AUTH=token with API_TOKENS or `flask tokens create`")
