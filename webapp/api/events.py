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
connection between its polls; how many a process serves, for how long, is
bounded by :mod:`.streams`. A stream whose database fails ends (with a
comment saying so) instead of breaking off with a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from flask import Flask, Response, current_app
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wsgi import ClosingIterator

from ..workflow import current_notifier
from ..workflow.notify import EVENT_TYPES
from .auth import current_identity
from .blueprint import Blueprint
from ..queries.feed import Cursor, ExecutionFeed, Wakeup, follow, frame
from ..queries.reads import get_execution, log_position
from .pagination import bad_cursor
from .schemas import Text
from .settings import EXTENSION_KEY as SETTINGS_KEY
from .settings import current_settings
from .streams import current_slots

log = logging.getLogger(__name__)

bp = Blueprint("events", __name__, url_prefix="/api/v1", description="Live progress of executions.")

#: What EventSource waits before it reconnects, in milliseconds.
RECONNECT_MS = 2000


class StreamMessage(Schema):
    """One Server-Sent Events message of the stream (comments aside)."""

    event = fields.String(required=True, metadata={"enum": [*EVENT_TYPES, "log"]})
    data = fields.String(required=True, metadata={
        "description": "JSON: the event (its id, execution_id, type, data, created_at) or the log record "
                       "(as GET .../logs shows it)"})
    id = fields.String(metadata={"description": "The position, `<event id>:<log id>`: send it back as "
                                                "Last-Event-ID to resume after this message."})
    retry = fields.Integer(metadata={"description": "Milliseconds to wait before reconnecting."})


class StreamHeaders(Schema):
    last_event_id = fields.String(data_key="Last-Event-ID", metadata={
        "description": "Resume after this message: the `id` of the last message received.",
    })


class StreamQuery(Schema):
    last_event_id = Text(metadata={
        "description": "Resume after this message, as `Last-Event-ID` does, for a client that cannot "
                       "send the header (a new EventSource after the server refused one); the header wins.",
    })


@bp.get("/executions/<uuid:execution_id>/events")
@bp.requires("read")
@bp.arguments(StreamQuery, location="query")
@bp.arguments(StreamHeaders, location="headers")
@bp.response(200, StreamMessage, content_type="text/event-stream", description=(
    "Messages `event: <type>` with `data: <JSON>`: the progress events (execution_queued, "
    "execution_started, step_started, step_succeeded, step_failed, step_retrying, "
    "execution_resumed, execution_succeeded, execution_failed) and `log` (a log record); "
    "the stream ends after the final event, or after API_SSE_MAX_SECONDS. The schema is "
    "that of each message."))
@bp.problem(400, "Last-Event-ID is not a position of this stream.")
@bp.problem(404, "No such execution.")
@bp.problem(429, "This token holds API_SSE_MAX_STREAMS_PER_TOKEN streams of this process: see Retry-After.")
@bp.problem(503, "This process serves API_SSE_MAX_STREAMS streams already: see Retry-After.")
def execution_events(query: dict[str, Any], headers: dict[str, Any],
                     execution_id: uuid.UUID) -> ResponseReturnValue:
    """Follow an execution live (Server-Sent Events), for up to
    ``API_SSE_MAX_SECONDS``; then reconnect with ``Last-Event-ID``."""
    if headers.get("last_event_id") is not None:
        position = (headers["last_event_id"], "Last-Event-ID", "headers")
    else:
        position = (query.get("last_event_id"), "last_event_id", "query")
    cursor = _cursor(*position)
    lease = current_slots().acquire(current_identity().key)  # first: a refusal costs no query
    try:
        body = _prepared_stream(execution_id, cursor, lease.ends_at, *position[1:])
    except BaseException:
        lease.release()
        raise
    return Response(ClosingIterator(body, lease.release), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _prepared_stream(execution_id: uuid.UUID, cursor: Cursor, ends_at: float,
                     name: str, location: str) -> Iterator[str]:
    get_execution(execution_id)
    floor = None
    if cursor.log_id is not None:
        floor = log_position(str(execution_id), cursor.log_id)
        if floor is None:
            raise bad_cursor(name, f"execution {execution_id} has no log record {cursor.log_id}",
                             location=location)
    feed = ExecutionFeed(execution_id, log_delay=current_settings().sse_log_delay,
                         event_id=cursor.event_id, floor=floor)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return _stream(app, feed, current_notifier().client, ends_at)


def _cursor(text: str | None, name: str, location: str) -> Cursor:
    if text is None:
        return Cursor()
    try:
        return Cursor.parse(text)
    except ValueError as exc:
        raise bad_cursor(name, str(exc), location=location) from None


def _stream(app: Flask, feed: ExecutionFeed, client: redis.Redis | None, ends_at: float) -> Iterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    wakeup = Wakeup(client, feed.execution_id)  # subscribed only once the stream is read
    settings = app.extensions[SETTINGS_KEY]
    try:
        for messages in follow(app, feed, wakeup, poll_interval=settings.sse_poll_interval,
                               idle_every=settings.sse_heartbeat, until=ends_at):
            if not messages:
                yield ": keepalive\n\n"
            for message in messages:
                yield frame(message)
    except SQLAlchemyError as exc:
        log.warning("event stream of %s ended: the database failed (%s)", feed.execution_id, exc)
        yield ": the database cannot be read now; reconnect with Last-Event-ID\n\n"
        return
    if not feed.done:
        yield ": this stream is API_SSE_MAX_SECONDS old; reconnect with Last-Event-ID\n\n"
