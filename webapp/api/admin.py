"""``/api/v1/tokens``: the stored tokens, for callers with the ``admin``
scope (:mod:`.token_admin` does the work, for ``flask tokens`` too)."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from ..models import ApiToken
from .blueprint import Blueprint
from .errors import Problem
from .schemas import NoQueryArgs, Text, page_of
from .scopes import SCOPES, parse_scopes
from .token_admin import MAX_NAME, NoActiveToken, TokenExists, create_token, list_tokens, revoke_token

bp = Blueprint("tokens", __name__, url_prefix="/api/v1", description="Bearer tokens (the `admin` scope).")


class TokenIn(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=MAX_NAME), metadata={"example": "ci"})
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), load_default=list(SCOPES),
                         validate=validate.Length(min=1),
                         metadata={"description": "What the token may do; all scopes by default."})


class TokenOut(Schema):
    name = fields.String()
    scopes = fields.List(fields.String(metadata={"enum": list(SCOPES)}))
    created_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreatedOut(TokenOut):
    token = fields.String(metadata={"description": "The token: shown this once, stored hashed."})


TokenPage = page_of(TokenOut, "TokenPage")


@bp.get("/tokens")
@bp.requires("admin")
@bp.arguments(NoQueryArgs, location="query")
@bp.response(200, TokenPage)
def list_stored(_args: dict[str, Any]) -> ResponseReturnValue:
    """Every stored token, oldest first (never the token itself)."""
    return {"items": [described(row) for row in list_tokens()], "next": None}


@bp.post("/tokens")
@bp.requires("admin")
@bp.arguments(TokenIn)
@bp.response(201, TokenCreatedOut)
@bp.problem(409, "A token of that name exists (revoked or not).")
def create(body: dict[str, Any]) -> ResponseReturnValue:
    """Make a token; the answer is the only time it is shown."""
    try:
        row, token = create_token(body["name"], parse_scopes(body["scopes"]))
    except TokenExists as exc:
        raise Problem(409, "token-exists", "Token exists", str(exc)) from None
    return {**described(row), "token": token}


@bp.delete("/tokens/<name>")
@bp.requires("admin")
@bp.response(200, TokenOut, description="Revoked: refused by every process within 10 s.")
@bp.problem(404, "No active token of that name.")
def revoke(name: str) -> ResponseReturnValue:
    """Revoke a token (its name stays taken)."""
    try:
        return described(revoke_token(name))
    except NoActiveToken as exc:
        raise Problem(404, "token-not-found", "Token not found", str(exc)) from None


def described(row: ApiToken) -> dict[str, Any]:
    return {"name": row.name, "scopes": row.scopes.split(), "created_at": row.created_at,
            "revoked_at": row.revoked_at}
