"""Stored tokens: making, listing and revoking them, for ``flask tokens``
and for ``/api/v1/tokens`` (:mod:`.admin`, scope ``admin``).

A token is shown once, when it is made; only its SHA-256 is stored
(:mod:`.tokens`). A token has the scopes it was made with, every scope when
none is given (as tokens from ``API_TOKENS`` have).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ..extensions import db
from ..models import ApiToken, utcnow
from ..storable import unstorable
from .scopes import ALL_SCOPES, scope_text
from .tokens import hash_token, new_token

MAX_NAME = 100


class TokenNameInvalid(ValueError):
    """A name that cannot be a token's."""


class TokenExists(ValueError):
    """A token of that name exists (revoked or not): names are never reused."""


class NoActiveToken(LookupError):
    """No active token has that name."""


def check_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_NAME:
        raise TokenNameInvalid(f"a token name is 1 to {MAX_NAME} characters")
    what = unstorable(name)
    if what:
        raise TokenNameInvalid(f"a token name may not hold {what}")
    return name


def create_token(name: str, scopes: frozenset[str] = ALL_SCOPES) -> tuple[ApiToken, str]:
    """Store a new token named ``name``; the row and the token (shown once)."""
    check_name(name)
    if db.session.scalar(sa.select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise TokenExists(f"a token named {name!r} exists already (revoked or not)")
    token = new_token()
    row = ApiToken(name=name, token_hash=hash_token(token), scopes=scope_text(scopes))
    db.session.add(row)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:  # made by a concurrent call since the check above
        db.session.rollback()
        raise TokenExists(f"a token named {name!r} exists already (revoked or not)") from None
    return row, token


def revoke_token(name: str) -> ApiToken:
    """Revoke the active token named ``name`` (in every process within
    ``tokens.REFRESH_SECONDS``); the row."""
    row = None if unstorable(name) else db.session.scalar(
        sa.select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
    if row is None:
        raise NoActiveToken(f"no active token named {name!r}")
    row.revoked_at = utcnow()
    db.session.commit()
    return row


def list_tokens() -> Sequence[ApiToken]:
    """Every stored token, oldest first (never the token itself)."""
    return db.session.scalars(sa.select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)).all()
