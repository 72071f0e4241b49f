"""Bearer tokens of the HTTP API: where they come from and how they are checked.

Two sources, both active when ``API_AUTH=token``:

* ``API_TOKENS``: comma-separated tokens from the environment, each with
  every scope, or only those written after it: ``token:read+start`` (hashed
  when the app starts; only the hashes are kept);
* the ``api_tokens`` table, managed with ``flask tokens create NAME
  [--scope read,start]`` (prints a new token once; stores its SHA-256),
  ``flask tokens revoke NAME`` and ``flask tokens list``, or through
  ``/api/v1/tokens`` with the ``admin`` scope (:mod:`.token_admin`).

A token is 32 random bytes (``secrets.token_urlsafe``), so a plain SHA-256
is enough to store it: nothing can be guessed from the hash. A presented
token is hashed and compared with every known hash with
``hmac.compare_digest``; :meth:`TokenStore.identify` gives the caller's
:class:`~.scopes.Identity`.

The table is read at most every ``REFRESH_SECONDS`` per process (a revoked
token stops working within that time), and again when a token is not among
the hashes read more than ``UNKNOWN_REFRESH_SECONDS`` ago (a token made in
another process works here within that time; unknown tokens cost the
database at most one read per process that often), through a connection of
the store's own that is closed right after (with the app's connect and
statement timeouts): checking a token never holds a connection of the app's pool, so
``POST /api/v1/logs`` stays free of the database. One request at a time
reads the table, outside any lock; the others meanwhile check against the
hashes read last (:mod:`.refreshed`), so a database that hangs delays one
request, not the process. If the table cannot be read, the hashes read last
stay in use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..models import ApiToken
from .refreshed import Refreshed
from .scopes import ALL_SCOPES, Identity, parse_scopes

EXTENSION_KEY = "api_tokens"
REFRESH_SECONDS = 10.0
UNKNOWN_REFRESH_SECONDS = 1.0

#: (hash, identity) pairs: what a presented token is compared with.
Known = tuple[tuple[str, Identity], ...]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStoreUnavailable(RuntimeError):
    """The table could not be read, and never was."""


def configured_tokens(entries: Iterable[str]) -> Known:
    """``API_TOKENS`` entries (``token`` or ``token:scope+scope``) as known
    hashes; ``ValueError`` naming an unknown scope."""
    known = []
    for position, entry in enumerate(entries, start=1):
        token, separator, written = entry.rpartition(":")
        if not separator:
            token, scopes = entry, ALL_SCOPES
        else:
            try:
                scopes = parse_scopes(written)
            except ValueError as exc:
                raise ValueError(f"API_TOKENS entry {position}: {exc}") from None
        digest = hash_token(token)
        known.append((digest, Identity(f"API_TOKENS[{position}]", scopes, digest)))
    return tuple(known)


class TokenStore:
    def __init__(self, configured: Iterable[str], database_url: str, connect_args: Mapping[str, Any],
                 first_wait: float = 30.0) -> None:
        self._configured = configured_tokens(configured)
        self._database_url = database_url
        self._connect_args = dict(connect_args)
        self._engine: sa.engine.Engine | None = None
        self._stored: Refreshed[Known] = Refreshed(self._read_table, REFRESH_SECONDS, first_wait,
                                                   "the api_tokens table")

    def identify(self, token: str) -> Identity | None:
        """Who ``token`` is (one of API_TOKENS or an active stored token),
        or None.

        ``TokenStoreUnavailable`` when it is not in API_TOKENS and the table
        was never readable."""
        return self.identify_digest(hash_token(token))

    def identify_digest(self, digest: str) -> Identity | None:
        """:meth:`identify` from the token's SHA-256 (the identity's ``key``):
        what a browser session keeps, so that its cookie never holds the
        token, and checks again at every request (a revoked token ends its
        sessions too)."""
        found = _match(digest, self._configured)
        if found is not None:
            return found
        stored = self._stored.get()
        if stored is None:
            raise TokenStoreUnavailable("the api_tokens table cannot be read")
        found = _match(digest, stored)
        if found is None:  # made since the last read, perhaps in another process
            found = _match(digest, self._stored.get(max_age=UNKNOWN_REFRESH_SECONDS) or ())
        return found

    def _read_table(self) -> Known:
        with self._connect() as connection:
            rows = connection.execute(sa.select(ApiToken.name, ApiToken.token_hash, ApiToken.scopes)
                                      .where(ApiToken.revoked_at.is_(None)))
            return tuple((digest, Identity(name, stored_scopes(scopes), digest))
                         for name, digest, scopes in rows)

    def _connect(self) -> sa.engine.Connection:
        if self._engine is None:
            self._engine = sa.create_engine(self._database_url, poolclass=sa.pool.NullPool,
                                            connect_args=self._connect_args)
        return self._engine.connect()


def stored_scopes(text: str) -> frozenset[str]:
    """The scopes of a stored token (unknown words are no scope)."""
    return frozenset(text.split()) & ALL_SCOPES


def _match(digest: str, known: Known) -> Identity | None:
    found = None
    for candidate, identity in known:  # no early exit: the time does not tell which one matched
        if hmac.compare_digest(digest, candidate):
            found = identity
    return found


def current_store() -> TokenStore:
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


def identify(token: str) -> Identity | None:
    """:meth:`TokenStore.identify` of this app's store."""
    return current_store().identify(token)


def identify_digest(digest: str) -> Identity | None:
    """:meth:`TokenStore.identify_digest` of this app's store."""
    return current_store().identify_digest(digest)
