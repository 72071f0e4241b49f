"""``GET /api/v1/executions/<id>/events``: the execution's progress events
and new log records as Server-Sent Events, until the execution ends.

Each message is ``id: <event id>:<log id>``, ``event: <event type or log>``
and ``data: <JSON>``; a comment line (``: keepalive``) goes out after
``API_SSE_HEARTBEAT`` seconds without a message, so that proxies keep the
connection and a vanished client is noticed. A client that reconnects with
``Last-Event-ID`` (browsers' EventSource does) gets what came after. How the
feed reads, and what it guarantees, is in :mod:`.feed`.

A stream holds one gunicorn thread (gthread workers: ``WEB_CONCURRENCY`` x
``GUNICORN_THREADS`` requests at once, streams included) and no database
connection between its polls.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import redis
from flask import Flask, Response, current_app
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields

from ..workflow import current_notifier
from .blueprint import Blueprint
from .feed import Cursor, ExecutionFeed, Wakeup, follow, frame
from .pagination import bad_cursor
from .reads import get_execution, log_position

bp = Blueprint("events", __name__, url_prefix="/api/v1", description="Live progress of executions.")

#: What EventSource waits before it reconnects, in milliseconds.
RECONNECT_MS = 2000


class StreamHeaders(Schema):
    last_event_id = fields.String(data_key="Last-Event-ID", metadata={
        "description": "Resume after this message: the `id` of the last message received.",
    })


@bp.get("/executions/<uuid:execution_id>/events")
@bp.requires("read")
@bp.arguments(StreamHeaders, location="headers")
@bp.response(200, {"type": "string"}, content_type="text/event-stream", description=(
    "Messages `event: <type>` with `data: <JSON>`: the progress events (execution_queued, "
    "execution_started, step_started, step_succeeded, step_failed, step_retrying, "
    "execution_resumed, execution_succeeded, execution_failed) and `log` (a log record); "
    "the stream ends after the final event."))
@bp.problem(400, "Last-Event-ID is not a position of this stream.")
@bp.problem(404, "No such execution.")
def execution_events(headers: dict[str, Any], execution_id: uuid.UUID) -> ResponseReturnValue:
    """Follow an execution live (Server-Sent Events)."""
    cursor = _cursor(headers.get("last_event_id"))
    get_execution(execution_id)
    floor = None
    if cursor.log_id is not None:
        floor = log_position(str(execution_id), cursor.log_id)
        if floor is None:
            raise bad_cursor("Last-Event-ID", f"execution {execution_id} has no log record {cursor.log_id}",
                             location="headers")
    config = current_app.config
    feed = ExecutionFeed(execution_id, log_delay=config["API_SSE_LOG_DELAY"], event_id=cursor.event_id,
                         floor=floor)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    body = _stream(app, feed, current_notifier().client)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _cursor(text: str | None) -> Cursor:
    if text is None:
        return Cursor()
    try:
        return Cursor.parse(text)
    except ValueError as exc:
        raise bad_cursor("Last-Event-ID", str(exc), location="headers") from None


def _stream(app: Flask, feed: ExecutionFeed, client: redis.Redis | None) -> Iterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    wakeup = Wakeup(client, feed.execution_id)  # subscribed only once the stream is read
    config = app.config
    for messages in follow(app, feed, wakeup, poll_interval=config["API_SSE_POLL_INTERVAL"],
                           idle_every=config["API_SSE_HEARTBEAT"]):
        if not messages:
            yield ": keepalive\n\n"
        for message in messages:
            yield frame(message)
