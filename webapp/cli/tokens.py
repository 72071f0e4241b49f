"""``flask tokens create NAME [--scope ...]``, ``revoke NAME``, ``list``:
the HTTP API's bearer tokens (:mod:`webapp.api.token_admin` does the work,
for ``/api/v1/tokens`` too)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from ..api.scopes import ALL_SCOPES, parse_scopes
from ..api.settings import current_settings
from ..api.token_admin import (
    NoActiveToken, TokenExists, TokenNameInvalid, create_token, list_tokens, revoke_token,
)

tokens_cli = AppGroup("tokens", help="Bearer tokens of the HTTP API (used when API_AUTH=token).")


def _scopes_option(_context: click.Context, _param: click.Parameter,
                   value: tuple[str, ...]) -> frozenset[str]:
    if not value:
        return ALL_SCOPES
    try:
        return parse_scopes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@tokens_cli.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, callback=_scopes_option, metavar="SCOPES",
              help="What the token may do: read, start, ingest, admin; comma-separated or repeated "
                   "[default: all of them].")
def create_command(name: str, scopes: frozenset[str]) -> None:
    """Make a token named NAME; print it (it is shown only this once)."""
    try:
        _row, token = create_token(name, scopes)
    except TokenNameInvalid as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    except TokenExists as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)
    if current_settings().auth != "token":
        click.echo("note: API_AUTH is not 'token' here: the API does not ask for tokens", err=True)


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_command(name: str) -> None:
    """Revoke the token named NAME (within 10 s in every process)."""
    try:
        revoke_token(name)
    except NoActiveToken as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {name}")


@tokens_cli.command("list")
def list_command() -> None:
    """The tokens: name, created, revoked, scopes (never the token)."""
    for token in list_tokens():
        revoked = token.revoked_at.isoformat(timespec="seconds") if token.revoked_at else "active"
        created = token.created_at.isoformat(timespec="seconds")
        click.echo(f"{token.name}  {created}  {revoked}  {token.scopes}")
