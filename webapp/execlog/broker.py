"""kombu's Redis transport, with three changes, each in a channel class of
its own: workers survive items that are not messages (:class:`RejectingChannel`)
and a broker that goes away (:class:`QoS`); commands reuse one Redis client
(:class:`ReusedClientChannel`) and envelopes are encoded by orjson
(:class:`FastEnvelopeChannel`), which together halve what a publish costs.
kombu offers no hook for any of them: they override methods of its channel,
and kombu is pinned to the minor version they were written for
(``tests/unit/test_kombu_pins.py`` fails when its originals change).

kombu's Redis channel decodes every item it pops from a queue list inside the
worker's event loop. An item that is not a kombu message (bytes that are not
JSON, JSON of another shape, a body that is not valid base64) raises there and
stops the whole worker: with kombu 5.7, ``LPUSH logs garbage`` ends in
"Unrecoverable error: JSONDecodeError" and the worker exits.

This channel checks each item before kombu sees it. One that is not a message
is set aside, with the reason, in the Redis list ``<queue>.rejected`` (for
``logs``: ``logs.rejected``; ``flask execlog status`` shows its length), an
error is logged, and the worker goes on with the next item. Items that are
messages take kombu's own path unchanged.

It is selected by ``broker_transport`` in :func:`webapp.config.celery_config`
for ``redis://`` brokers. :mod:`webapp.execlog.consumer` does the same for
messages Celery itself refuses; well-formed task messages whose arguments are
not a batch reach the task, which dead-letters them in the database
(:mod:`webapp.execlog.tasks`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from queue import Empty
from typing import Any

import orjson
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

log = logging.getLogger(__name__)

REJECTED_SUFFIX = ".rejected"
#: How many rejected items ``<queue>.rejected`` keeps (the newest), and how
#: much of each item's text: whoever can write to the queue can fill it, and
#: Redis's memory is the broker's. ``<queue>.rejected.count`` counts them all.
REJECTED_KEEP = 1000
REJECTED_RAW_CHARS = 16384


def rejected_list(queue: str) -> str:
    return queue + REJECTED_SUFFIX


def rejected_counter(queue: str) -> str:
    return queue + REJECTED_SUFFIX + ".count"


def why_not_a_message(item: bytes) -> tuple[Any, str | None]:
    """Parse a queue item; return (message, None) or (None, reason)."""
    try:
        message = json.loads(item)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(message, dict):
        return None, f"a message is a JSON object, not {type(message).__name__}"
    properties = message.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        return None, "no properties.delivery_tag"
    if not isinstance(properties.get("delivery_info", {}), dict):
        return None, "properties.delivery_info is not an object"
    if not isinstance(message.get("headers") or {}, dict):
        return None, "headers is not an object"
    body = message.get("body")
    if body is not None and not isinstance(body, str):
        return None, "body is not text"
    if body and properties.get("body_encoding") == "base64":
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None, "body is not valid base64"
    return message, None


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS, but a channel closed after its connection is gone
    does not take the worker down.

    When Redis goes away, Celery closes the connection and then its channel;
    kombu 5.7's channel close then tries to put the messages it had taken
    back on the queue through that connection, which is gone
    (``AttributeError: 'NoneType' object has no attribute 'hostname'``),
    and the worker stops with "Unrecoverable error". Those messages are safe
    in Redis's ``unacked`` hash and are handed out again after the
    visibility timeout, so there is nothing to do but not crash.
    """

    def restore_unacked(self, client: Any = None) -> Any:
        transport = self.channel.connection
        if client is None and (transport is None or transport.client is None):
            log.warning("broker connection gone: %d message(s) taken by this worker will be "
                        "redelivered after the visibility timeout", len(self._delivered))
            self._delivered.clear()
            return None
        return super().restore_unacked(client)


class ReusedClientChannel(kombu_redis.Channel):
    """kombu's Redis channel, with one Redis client for its commands.

    kombu makes a new redis-py client for every command outside a pipeline,
    every publish included, and redis-py builds its table of response
    callbacks in each: 0.3 ms of CPU a publish, measured, half of what a
    small publish costs the producer. One client per channel (on the
    channel's connection pool) does the same work.
    """

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        yield client if client else self._commands_client

    @cached_property
    def _commands_client(self) -> Any:
        return self._create_client()


class FastEnvelopeChannel(kombu_redis.Channel):
    """kombu's Redis channel, with the message envelope encoded by orjson.

    A message on Redis is a JSON envelope around the (base64) body; kombu
    encodes it with the standard library, about 60 us of a log batch's
    publish, measured: a third of what the producer spends on it. orjson
    writes the same JSON in a tenth of that. An envelope orjson cannot
    encode (a header of a type only kombu's encoder knows) takes kombu's way.
    """

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        if kwargs.get("_publish_batch") is not None or (self._expires and queue in self._expires):
            return super()._put(queue, message, **kwargs)
        try:
            envelope = orjson.dumps(message)
        except TypeError:
            return super()._put(queue, message, **kwargs)
        # kombu 5.7's _put in its plain case: no expiry, no publish batch
        # (tests/unit/test_kombu_pins.py pins the original).
        pri = self._get_message_priority(message, reverse=False)
        with self.conn_or_acquire() as client:
            client.lpush(self._q_for_pri(queue, pri), envelope)
        return None


class RejectingChannel(kombu_redis.Channel):
    """kombu's Redis channel, with each popped item checked first: one that
    is not a message is set aside instead of stopping the worker."""

    QoS = QoS

    def _checked(self, item: bytes, queue: str) -> Any:
        message, reason = why_not_a_message(item)
        if reason is not None:
            self.set_aside(item, queue, reason)
        return message

    def set_aside(self, item: bytes, queue: str, reason: str) -> None:
        raw = bytes_to_str(item) if isinstance(item, bytes) else str(item)
        record = json.dumps(
            {"queue": queue, "reason": reason, "rejected_at": time.time(),
             "raw": raw[:REJECTED_RAW_CHARS], "raw_chars": len(raw)},
            ensure_ascii=True,
        )
        try:
            with self.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
                pipe.lpush(rejected_list(queue), record)
                pipe.ltrim(rejected_list(queue), 0, REJECTED_KEEP - 1)
                pipe.incr(rejected_counter(queue))
                pipe.execute()
        except self.connection_errors:
            log.exception("could not keep a rejected item of %s", queue)
        log.error("rejected an item of queue %s (%s); kept in %s", queue, reason, rejected_list(queue))

    # The two methods below are kombu 5.7's, with the decoding line replaced
    # by self._checked(); tests/unit/test_kombu_pins.py pins the originals.

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            message = self._checked(item, dest)
            if message is not None:
                self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)
            if flush_reauth is not None:
                flush_reauth()

    def _get(self, queue: str) -> Any:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))
                if item:
                    self._maybe_update_queues_expire(client, queue)
                    message = self._checked(item, queue)
                    if message is None:
                        raise Empty()
                    return message
            self._maybe_update_queues_expire(client, queue)
            raise Empty()


class Channel(RejectingChannel, FastEnvelopeChannel, ReusedClientChannel):
    """The channel of :class:`SafeRedisTransport`: all three of the above."""


class SafeRedisTransport(kombu_redis.Transport):
    Channel = Channel
