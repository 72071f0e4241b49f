"""Keyset pagination: every listing is ``{"items": [...], "next": cursor}``.

A page is read as "the ``limit`` items after the cursor, in a fixed total
order", one more item is read to know whether there is a next page, and the
cursor names the last item served. Items inserted while a client pages do
not shift the pages it has not read yet (as an OFFSET would): nothing is
served twice, nothing already there is skipped.

Execution cursors are opaque: base64url of ``[created_at, id]``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from .errors import Problem

T = TypeVar("T")


def page(rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]) -> dict[str, Any]:
    """``rows`` were read with ``limit + 1``: the page and its ``next``."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return {"items": items, "next": cursor_of(items[-1]) if more else None}


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(item_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names; 400 (bad-cursor) for anything this API
    did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(item_id, str):
            raise TypeError("a cursor holds two strings")
        moment, item = datetime.fromisoformat(created_at), uuid.UUID(item_id)
        if moment.tzinfo is None:
            raise ValueError("no offset")
        # In UTC, as created_after is: PostgreSQL takes offsets up to 15:59
        # only (a cursor with +20:00 was a 500), Python up to 23:59.
        return moment.astimezone(timezone.utc), item
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError, RecursionError):
        raise bad_cursor("cursor", f"{cursor!r} is not a cursor of this listing") from None


def bad_cursor(parameter: str, detail: str, location: str = "query") -> Problem:
    return Problem(400, "bad-cursor", "Bad cursor", f"{parameter}: {detail}",
                   errors={location: {parameter: [detail]}})
