"""NotificationService: progress events of executions.

An event is a row of ``execution_events``, inserted in the same transaction as
the state change it announces: ``publish`` adds it to the session, and the
caller commits the state change and its event together, so the table never
shows a step succeeded that the steps table does not. The events of an
execution are ordered by their id: one process at a time drives an
execution, and it publishes one event after another.

Once that commit happened (never when it is rolled back), the event is also
published on the Redis channel
``execution:<id>`` when the broker is Redis, as a wake-up for live readers
(the SSE endpoint). Pub/sub is at-most-once: a reader that was not
subscribed, or a publish that failed, loses nothing, because the table is the
record and readers catch up from it by event id. On the embedded file-system
broker there is no pub/sub and the table alone is the channel.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import redis
from marshmallow_sqlalchemy import SQLAlchemyAutoSchema, auto_field
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import ExecutionEvent, utcnow

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "execution:"

#: Every event type, in the order an execution may publish them.
EVENT_TYPES = (
    "execution_queued",
    "execution_resumed",
    "execution_started",
    "step_started",
    "step_succeeded",
    "step_failed",
    "step_retrying",
    "execution_succeeded",
    "execution_failed",
)
#: Events after which an execution does nothing until someone resumes it.
FINAL_EVENT_TYPES = ("execution_succeeded", "execution_failed")


def channel(execution_id: uuid.UUID | str) -> str:
    """The pub/sub channel of an execution's events."""
    return f"{CHANNEL_PREFIX}{execution_id}"


class EventOut(SQLAlchemyAutoSchema):
    """An event as JSON: what is published, and what the API serves."""

    class Meta:
        model = ExecutionEvent
        include_fk = True

    type = auto_field(metadata={"enum": list(EVENT_TYPES)})


_event_schema = EventOut()


def event_payload(event: ExecutionEvent) -> dict[str, Any]:
    """An event as JSON (:class:`EventOut`)."""
    return _event_schema.dump(event)  # type: ignore[no-any-return]


class NotificationService:
    """Records and broadcasts the progress events of executions."""

    def __init__(self, client: redis.Redis | None) -> None:
        #: None on a broker without pub/sub: the table is then the channel.
        self.client = client

    @classmethod
    def from_broker_url(cls, url: str) -> NotificationService:
        """Pub/sub on the broker's Redis; none on other brokers. No
        connection is made until the first publish."""
        if not url.startswith(("redis://", "rediss://")):
            return cls(None)
        return cls(redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5))

    def publish(
        self, execution_id: uuid.UUID, type_: str, data: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Add the event to the session (the caller commits it with the
        state change it announces); it is broadcast once that commit
        happened. Its JSON form."""
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = ExecutionEvent(
            execution_id=execution_id, type=type_, data=dict(data or {}), created_at=utcnow()
        )
        session = db.session()
        session.add(event)
        session.flush()
        payload = event_payload(event)
        session.info.setdefault(PENDING_KEY, []).append((self, execution_id, payload))
        return payload

    def _broadcast(self, execution_id: uuid.UUID, payload: dict[str, Any]) -> None:
        if self.client is None:
            return
        try:
            self.client.publish(channel(execution_id), json.dumps(payload))
        except redis.RedisError as exc:
            log.warning("event %s of execution %s not broadcast (%s); it is in execution_events",
                        payload["id"], execution_id, exc)


#: ``session.info`` key: events added to the session, broadcast once committed.
PENDING_KEY = "execution_events_to_broadcast"


@sa.event.listens_for(Session, "after_commit")
def _broadcast_committed(session: Session) -> None:
    for notifier, execution_id, payload in session.info.pop(PENDING_KEY, ()):
        notifier._broadcast(execution_id, payload)


@sa.event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
