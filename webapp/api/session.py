"""The browser session of the pages (``/ui/``) in token mode.

A person gives a token once, on ``/ui/login``; the session cookie (signed
with ``SECRET_KEY``, HttpOnly, SameSite=Lax, see
:func:`webapp.config.session_config`) then keeps the token's SHA-256, never
the token: the cookie cannot be replayed as a bearer token, and tokens never
appear in URLs. Each request of a session is checked again against the
token store (:func:`~.tokens.identify_digest`), so a revoked token ends its
sessions within the store's refresh time.

State-changing requests of a session (any method but GET, HEAD, OPTIONS)
also need the session's CSRF token, in the ``X-CSRF-Token`` header (the
page's scripts) or the ``csrf_token`` form field (the page's forms): another
site can make a browser send the cookie, not read the token.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

from .scopes import Identity
from .tokens import identify_digest

IDENTITY_KEY = "token_sha256"
CSRF_KEY = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def csrf_token() -> str:
    """The session's CSRF token, made on first use (a page renders it)."""
    if not isinstance(session.get(CSRF_KEY), str):
        session[CSRF_KEY] = secrets.token_urlsafe(32)
    return session[CSRF_KEY]  # type: ignore[no-any-return]


def csrf_ok() -> bool:
    """Whether this request may change state: a safe method, or the
    session's CSRF token presented."""
    if request.method in SAFE_METHODS:
        return True
    expected = session.get(CSRF_KEY)
    presented = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return isinstance(expected, str) and hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                                                             expected.encode())


def has_session() -> bool:
    return isinstance(session.get(IDENTITY_KEY), str)


def session_identity() -> Identity | None:
    """The identity the session signed in with, if its token still holds;
    a session whose token was revoked is cleared."""
    digest = session.get(IDENTITY_KEY)
    if not isinstance(digest, str):
        return None
    identity = identify_digest(digest)
    if identity is None:
        session.clear()
    return identity


def sign_in(identity: Identity) -> None:
    """Start a session for ``identity``: a fresh session (and CSRF token),
    so that one set before signing in cannot be fixed on the victim."""
    session.clear()
    session.permanent = True
    session[IDENTITY_KEY] = identity.key
    csrf_token()


def sign_out() -> None:
    session.clear()
