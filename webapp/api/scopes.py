"""Who calls, and what they may do: identities and their scopes.

Authentication ends in an :class:`Identity` whatever the credential was (a
bearer token of :mod:`.tokens`; anything else that can name a caller and its
scopes can make one too); authorization asks it for one scope per operation
(:meth:`~.blueprint.Blueprint.requires`, checked by :mod:`.auth`):

=========  =====================================================================
scope      operations
=========  =====================================================================
``read``   read executions, their logs and events, the runners; ``/readyz``'s
           details, and ``/readyz`` and ``/metrics`` when ``API_PROTECT_PROBES=1``
``start``  start and retry executions
``ingest`` ``POST /api/v1/logs``
``admin``  ``/api/v1/tokens``: list, make and revoke tokens
=========  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..models import TOKEN_SCOPES

SCOPES = TOKEN_SCOPES
ALL_SCOPES = frozenset(SCOPES)


@dataclass(frozen=True)
class Identity:
    """A caller: a name to show, its scopes, and the key per-caller limits
    count by (None: not limited per caller, e.g. open mode)."""

    name: str
    scopes: frozenset[str]
    key: str | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


#: Open mode (``API_AUTH=open``): loopback callers may do everything.
OPEN_IDENTITY = Identity("open mode", ALL_SCOPES, None)


def requires(scope: str) -> Callable[[Any], Any]:
    """Mark a view with the scope it needs (:mod:`.auth` checks it; a view
    marked with none needs ``admin``). The API's blueprints also document it
    (:meth:`~.blueprint.Blueprint.requires`); the pages use this one."""
    check_scope_name(scope)

    def decorator(view: Any) -> Any:
        view.required_scope = scope
        return view

    return decorator


def check_scope_name(scope: str) -> str:
    if scope not in ALL_SCOPES:
        raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")
    return scope


def parse_scopes(text: str | Iterable[str]) -> frozenset[str]:
    """Scopes written ``read,start``, ``read+start`` or ``read start`` (or
    several such strings); ``ValueError`` naming an unknown one or none."""
    parts = [text] if isinstance(text, str) else list(text)
    found = {check_scope_name(name) for part in parts
             for name in part.replace(",", " ").replace("+", " ").split()}
    if not found:
        raise ValueError(f"no scope given (known: {', '.join(SCOPES)})")
    return frozenset(found)


def scope_text(scopes: Iterable[str]) -> str:
    """Scopes in their canonical order, space-separated (as stored)."""
    held = set(scopes)
    return " ".join(scope for scope in SCOPES if scope in held)
