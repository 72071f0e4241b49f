"""The live feed of one execution: its progress events and its log records,
read poll by poll. ``GET /executions/<id>/events`` sends it as Server-Sent
Events; ``flask executions start --follow`` prints it.

**No connection is held between polls.** :func:`follow` pushes an app
context for each poll, so each poll has a session of its own that gives its
connection back to the pool when the poll ends. A stream that waits holds a
thread and (on Redis) a pub/sub subscription, never a database connection.

**Wake-ups.** On a Redis broker the feed subscribes to the execution's
channel (:func:`webapp.workflow.notify.channel`) and polls as soon as an
event is published; otherwise, and for log records (nothing announces
them), it polls every ``API_SSE_POLL_INTERVAL`` seconds.

**Events** (``execution_events``) are read by id, so none is missed or
repeated. **Log records** are read in ``(created_at, id)`` order, but they
reach the table in batches, from several processes, up to a flush interval
after they were logged: a record may land after later ones were sent. Each
poll therefore also reads back ``API_SSE_LOG_DELAY`` seconds behind the
newest record sent and sends what it had not sent yet. The guarantee: every
record that lands within ``API_SSE_LOG_DELAY`` seconds of its ``created_at``
is sent exactly once; one that lands later (replayed from a spool after an
outage) is in ``GET /executions/<id>/logs``, not in the stream.

**The end.** When the execution's last event is final (succeeded or
failed), the feed keeps reading logs until ``API_SSE_LOG_DELAY`` seconds
after that event, then sends the final event last and ends.

**Resuming.** Every message carries the position ``<event id>:<log id>``
(the last event sent and the newest log record sent). From a position, the
feed sends the events after that event and the records after that record in
``(created_at, id)`` order.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import Flask

from ..models import ExecutionLog, utcnow
from ..workflow.notify import FINAL_EVENT_TYPES, channel, event_payload
from .reads import Position, events_after, late_logs, logs_after
from .records import LogRecordOut

log = logging.getLogger(__name__)

#: Records read by one poll at most; a poll that reads this many is
#: followed by another at once.
POLL_RECORDS = 500
#: Event ids are a BIGINT: a larger one in Last-Event-ID is no position.
MAX_EVENT_ID = 2**63 - 1
_log_schema = LogRecordOut()


@dataclass(frozen=True)
class Cursor:
    """A place in the feed: the last event and the newest log record sent."""

    event_id: int = 0
    log_id: uuid.UUID | None = None

    def __str__(self) -> str:
        return f"{self.event_id}:{self.log_id or ''}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``ValueError`` for text that is not ``<int>:<uuid or nothing>``."""
        event_id, separator, log_id = text.strip().partition(":")
        digits = event_id.isascii() and event_id.isdigit() and len(event_id) <= 19
        if not separator or not digits or int(event_id) > MAX_EVENT_ID:
            raise ValueError(f"{text!r} is not a position of this stream (<event id>:<log id>)")
        return cls(int(event_id), uuid.UUID(log_id) if log_id else None)


@dataclass(frozen=True)
class Message:
    """One item of the feed: ``name`` is the event type, or ``log``."""

    name: str
    data: dict[str, Any]
    created_at: datetime
    cursor: Cursor


@dataclass
class ExecutionFeed:
    """Reads what is new at each :meth:`poll` (inside an app context)."""

    execution_id: uuid.UUID
    log_delay: float
    event_id: int = 0
    #: Records at or before this position are never sent (the resume point).
    floor: Position | None = None
    newest: Position | None = None
    clock: Callable[[], datetime] = utcnow
    done: bool = False
    behind: bool = False
    _held_final: dict[str, Any] | None = None
    _sent: dict[uuid.UUID, datetime] = field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        return str(self.execution_id)

    def poll(self) -> list[Message]:
        """What is new since the last poll, in time order."""
        items: list[tuple[datetime, str, Any]] = [
            (e["created_at"], "event", e) for e in self._new_events()
        ]
        items += [(r.created_at, "log", r) for r in self._new_logs()]
        items.sort(key=lambda item: item[0])
        messages = [self._message(kind, item) for _, kind, item in items]
        self._forget_sent()
        final = self._held_final
        if final is not None and not self.behind and self.clock() >= self._settled_at(final):
            self._held_final, self.done = None, True
            messages.append(self._message("event", final))
        return messages

    # -- events -----------------------------------------------------------

    def _new_events(self) -> list[dict[str, Any]]:
        found = [event_payload(e) | {"created_at": e.created_at}
                 for e in events_after(self.execution_id, self._last_read_event())]
        if self._held_final is not None and found:
            found.insert(0, self._held_final)  # not final after all: the execution was resumed
            self._held_final = None
        if found and found[-1]["type"] in FINAL_EVENT_TYPES:
            self._held_final = found.pop()
        return found

    def _last_read_event(self) -> int:
        return self._held_final["id"] if self._held_final is not None else self.event_id

    def _settled_at(self, final: dict[str, Any]) -> datetime:
        return final["created_at"] + timedelta(seconds=self.log_delay)

    # -- logs ---------------------------------------------------------------

    def _new_logs(self) -> list[ExecutionLog]:
        start = max((p for p in (self.newest, self.floor) if p is not None), default=None)
        forward = list(logs_after(self.trace_id, start, POLL_RECORDS))
        self.behind = len(forward) == POLL_RECORDS
        late: list[ExecutionLog] = []
        if self.newest is not None:
            window_start = self.newest[0] - timedelta(seconds=self.log_delay)
            late = list(late_logs(self.trace_id, window_start, self.floor, self.newest,
                                  set(self._sent)))
        for record in forward + late:
            self._sent[record.id] = record.created_at
        return forward + late

    def _forget_sent(self) -> None:
        """Ids older than the window are never read again: drop them."""
        if self.newest is not None:
            window_start = self.newest[0] - timedelta(seconds=self.log_delay)
            self._sent = {key: at for key, at in self._sent.items() if at >= window_start}

    # -- messages -----------------------------------------------------------

    def _message(self, kind: str, item: Any) -> Message:
        if kind == "event":
            self.event_id = max(self.event_id, item["id"])
            data = {**item, "created_at": item["created_at"].isoformat()}
            return Message(item["type"], data, item["created_at"], self._cursor())
        position = (item.created_at, item.id)
        if self.newest is None or position > self.newest:
            self.newest = position
        return Message("log", _log_schema.dump(item), item.created_at, self._cursor())

    def _cursor(self) -> Cursor:
        """Where a client that got this far resumes: the newest record sent,
        or the one this feed resumed after."""
        latest = self.newest or self.floor
        return Cursor(self.event_id, None if latest is None else latest[1])


class Wakeup:
    """Waits for the execution's next event on Redis pub/sub, or for the
    timeout; without Redis (or when it fails) it only waits."""

    def __init__(self, client: redis.Redis | None, execution_id: uuid.UUID) -> None:
        self._pubsub = None
        if client is not None:
            try:
                self._pubsub = client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(channel(execution_id))
            except redis.RedisError as exc:
                log.warning("event stream of %s: no pub/sub (%s); polling", execution_id, exc)
                self.close()

    def wait(self, timeout: float) -> None:
        if self._pubsub is None:
            time.sleep(timeout)
            return
        try:
            self._pubsub.get_message(timeout=timeout)
        except redis.RedisError as exc:
            log.warning("event stream: pub/sub failed (%s); polling", exc)
            self.close()

    def close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except redis.RedisError:
                pass
            self._pubsub = None


def follow(app: Flask, feed: ExecutionFeed, wakeup: Wakeup, *, poll_interval: float,
           idle_every: float, until: float = math.inf) -> Iterator[list[Message]]:
    """Poll ``feed`` until it is done (or ``time.monotonic()`` reaches
    ``until``), each poll in an app context of its own; yield each poll's
    messages, and an empty list after every ``idle_every`` seconds without
    any (the stream's heartbeat)."""
    last_yield = time.monotonic()
    try:
        while True:
            with app.app_context():
                messages = feed.poll()
            if messages or time.monotonic() - last_yield >= idle_every:
                last_yield = time.monotonic()
                yield messages
            if feed.done or time.monotonic() >= until:
                return
            if not feed.behind:
                now = time.monotonic()
                wakeup.wait(max(0.0, min(poll_interval, idle_every - (now - last_yield), until - now)))
    finally:
        wakeup.close()


def frame(message: Message) -> str:
    """A message in the text/event-stream format (the JSON is one line)."""
    return f"id: {message.cursor}\nevent: {message.name}\ndata: {json.dumps(message.data)}\n\n"
