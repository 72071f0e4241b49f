"""Bearer tokens of the HTTP API: where they come from and how they are checked.

Two sources, both active when ``API_AUTH=token``:

* ``API_TOKENS``: comma-separated tokens from the environment (hashed when
  the app starts; only the hashes are kept);
* the ``api_tokens`` table, managed with ``flask tokens create NAME`` (prints
  a new token once; stores its SHA-256), ``flask tokens revoke NAME`` and
  ``flask tokens list``.

A token is 32 random bytes (``secrets.token_urlsafe``), so a plain SHA-256
is enough to store it: nothing can be guessed from the hash. A presented
token is hashed and compared with every known hash with
``hmac.compare_digest``.

The table is read at most every ``REFRESH_SECONDS`` per process (a revoked
token stops working within that time), through a connection of the store's
own that is closed right after: checking a token never holds a connection
of the app's pool, so ``POST /api/v1/logs`` stays free of the database. If
the table cannot be read, the hashes read last stay in use.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from ..models import ApiToken, utcnow

log = logging.getLogger(__name__)

EXTENSION_KEY = "api_tokens"
REFRESH_SECONDS = 10.0


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStoreUnavailable(RuntimeError):
    """The table could not be read, and never was."""


class TokenStore:
    def __init__(self, configured: list[str], database_url: str, application_name: str) -> None:
        self._configured = tuple(hash_token(token) for token in configured)
        self._database_url = database_url
        self._application_name = application_name
        self._engine: sa.engine.Engine | None = None
        self._stored: tuple[str, ...] | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def valid(self, token: str) -> bool:
        """Whether ``token`` is one of API_TOKENS or an active stored token.

        ``TokenStoreUnavailable`` when it is not in API_TOKENS and the table
        was never readable."""
        digest = hash_token(token)
        if _matches(digest, self._configured):
            return True
        return _matches(digest, self._stored_hashes())

    def _stored_hashes(self) -> tuple[str, ...]:
        with self._lock:
            if time.monotonic() - self._read_at >= REFRESH_SECONDS:
                self._refresh()
            if self._stored is None:
                raise TokenStoreUnavailable("the api_tokens table cannot be read")
            return self._stored

    def _refresh(self) -> None:
        try:
            with self._connect() as connection:
                rows = connection.execute(sa.select(ApiToken.token_hash).where(ApiToken.revoked_at.is_(None)))
                self._stored = tuple(row[0] for row in rows)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("api tokens: the table cannot be read (%s); using the tokens read before", exc)
        self._read_at = time.monotonic()

    def _connect(self) -> sa.engine.Connection:
        if self._engine is None:
            options: dict[str, Any] = {"poolclass": sa.pool.NullPool}
            if self._database_url.startswith("postgresql"):
                options["connect_args"] = {"application_name": self._application_name}
            self._engine = sa.create_engine(self._database_url, **options)
        return self._engine.connect()


def _matches(digest: str, known: tuple[str, ...]) -> bool:
    found = False
    for candidate in known:  # no early exit: the time does not tell which one matched
        found |= hmac.compare_digest(digest, candidate)
    return found


def current_store() -> TokenStore:
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


# -- flask tokens ---------------------------------------------------------------

tokens_cli = AppGroup("tokens", help="Bearer tokens of the HTTP API (used when API_AUTH=token).")


@tokens_cli.command("create")
@click.argument("name")
def create_token(name: str) -> None:
    """Make a token named NAME; print it (it is shown only this once)."""
    from ..extensions import db

    if not 1 <= len(name) <= 100:
        raise click.BadParameter("1 to 100 characters", param_hint="NAME")
    if db.session.scalar(sa.select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise click.ClickException(f"a token named {name!r} exists already (revoked or not)")
    token = new_token()
    db.session.add(ApiToken(name=name, token_hash=hash_token(token)))
    db.session.commit()
    click.echo(token)
    if current_app.config["API_AUTH"] != "token":
        click.echo("note: API_AUTH is not 'token' here: the API does not ask for tokens", err=True)


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_token(name: str) -> None:
    """Revoke the token named NAME (within 10 s in every process)."""
    from ..extensions import db

    revoked = db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    db.session.commit()
    if not revoked:
        raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"revoked {name}")


@tokens_cli.command("list")
def list_tokens() -> None:
    """The tokens: name, created, revoked (never the token)."""
    from ..extensions import db

    for token in db.session.scalars(sa.select(ApiToken).order_by(ApiToken.created_at)):
        revoked = token.revoked_at.isoformat(timespec="seconds") if token.revoked_at else "active"
        click.echo(f"{token.name}  {token.created_at.isoformat(timespec='seconds')}  {revoked}")
