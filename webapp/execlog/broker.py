"""kombu's Redis transport, with four changes, each in a channel class of
its own: a worker killed at any moment loses no message it had taken
(:class:`ClaimingChannel`); workers survive items that are not messages
(:class:`RejectingChannel`) and a broker that goes away (:class:`QoS`);
commands reuse one Redis client
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
from time import monotonic
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from queue import Empty
from typing import Any

import orjson
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from . import serializer

log = logging.getLogger(__name__)

REJECTED_SUFFIX = ".rejected"
#: The defaults of how many rejected items ``<queue>.rejected`` keeps (the
#: newest) and how much of each item's text (the transport options
#: ``rejected_keep`` and ``rejected_max_chars``; ``CELERY_REJECTED_KEEP`` and
#: ``CELERY_REJECTED_MAX_CHARS``): whoever can write to the queue can fill
#: it, and Redis's memory is the broker's. ``<queue>.rejected.count`` counts
#: them all.
REJECTED_KEEP = 1000
REJECTED_RAW_CHARS = 16384


def rejected_list(queue: str) -> str:
    return queue + REJECTED_SUFFIX


def rejected_counter(queue: str) -> str:
    return queue + REJECTED_SUFFIX + ".count"


def why_not_a_message(item: bytes) -> tuple[Any, str | None]:
    """Parse a queue item; return (message, None) or (None, reason)."""
    try:
        message = serializer.loads(item)  # orjson where it reads exactly: a third of json's time
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
    """kombu's Redis QoS, with two changes.

    A message :class:`ClaimingChannel` claimed is already in ``unacked``:
    recording it there again would cost a second encoding of the message
    and a round trip, so only the in-process bookkeeping is done.

    A channel closed after its connection is gone does not take the worker
    down. When Redis goes away, Celery closes the connection and then its
    channel; kombu 5.7's channel close then tries to put the messages it had
    taken back on the queue through that connection, which is gone
    (``AttributeError: 'NoneType' object has no attribute 'hostname'``),
    and the worker stops with "Unrecoverable error". Those messages are safe
    in Redis's ``unacked`` hash and are handed out again after the
    visibility timeout, so there is nothing to do but not crash.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag == getattr(self.channel, "delivering_claimed", None):
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

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


#: Takes the first item of the first non-empty list of KEYS[1..n] and, if
#: it is a message, records it in the ``unacked`` hash (KEYS[n+1]) and its
#: index (KEYS[n+2], score ARGV[1]) exactly as kombu's QoS.append does, in
#: one atomic step. Returns {index of the list, item, 1 if recorded}, or nil.
CLAIM_SCRIPT = """
local n = #KEYS - 2
for i = 1, n do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, message = pcall(cjson.decode, item)
    if ok and type(message) == 'table' and type(message.properties) == 'table' then
      local tag = message.properties.delivery_tag
      local info = message.properties.delivery_info
      if type(tag) == 'string' and type(info) == 'table'
          and type(info.exchange) == 'string' and type(info.routing_key) == 'string' then
        redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
        redis.call('HSET', KEYS[n + 1], tag,
                   '[' .. item .. ',' .. cjson.encode(info.exchange) .. ','
                   .. cjson.encode(info.routing_key) .. ']')
        return {i, item, 1}
      end
    end
    return {i, item, 0}
  end
end
return nil
"""

#: The list an idle channel blocks on between two claims; nothing writes it.
IDLE_KEY = "_webapp.claim.idle"


class ClaimingChannel(kombu_redis.Channel):
    """kombu's Redis channel, but a message is taken off its queue and
    recorded in ``unacked`` in one atomic step.

    kombu takes a message with ``BRPOP`` and records it in ``unacked`` (the
    hash a dead worker's messages are redelivered from) only once the reply
    is parsed in the worker; a pending reply may also wait unread in the
    socket while the worker has no prefetch credit. A worker killed in
    between (SIGKILL, the OOM killer) lost that message for good: one log
    batch, or one workflow run. Seen in the fault suite, one batch in a few
    kills.

    Here a Lua script (:data:`CLAIM_SCRIPT`) pops the item and records it
    in the same server-side step, so whatever a worker dies holding is in
    ``unacked`` and is redelivered after the visibility timeout. A script
    cannot block: when the queues are empty the channel waits
    ``claim_idle_wait`` seconds (a ``BRPOP`` on :data:`IDLE_KEY`, which
    keeps kombu's event loop and its health checks as they are) before
    the next claim, so an idle worker costs Redis a few commands a second
    and a new message waits at most that long.

    Queues consumed without acknowledgements (``no_ack``) have nothing to
    record: a channel consuming one keeps kombu's own ``BRPOP``, and so
    does one whose server refuses the script (it says so in the log).
    Needs Redis 6.0 or newer (a ``BRPOP`` timeout in fractions of a second).
    """

    #: Seconds an idle channel waits between claims (the transport option
    #: ``claim_idle_wait``).
    claim_idle_wait = 0.1
    _claims_refused = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._no_ack_queues: set[str] = set()
        #: "claim", "wait", or None (kombu's own BRPOP) while a reply is due.
        self._pending: str | None = None
        self._claim_queues: list[str] = []
        self._idle = False
        #: The tag of the claimed message being delivered (see QoS.append).
        self.delivering_claimed: str | None = None
        super().__init__(*args, **kwargs)

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack_queues.add(queue)
        else:
            self._no_ack_queues.discard(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _decode(self, item: bytes, queue: str) -> Any:
        """The message an item holds, or None when it is set aside."""
        return loads(bytes_to_str(item))

    def _brpop_start(self, timeout: Any = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if self._claims_refused or self._no_ack_queues.intersection(queues):
            self._pending = None
            return super()._brpop_start(timeout)
        if self._idle:
            self._pending = "wait"
            command = ["BRPOP", IDLE_KEY, self.claim_idle_wait]
        else:
            self._pending = "claim"
            self._claim_queues = [queue for _pri in self.priority_steps for queue in queues]
            keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
            keys += [self.unacked_key, self.unacked_index_key]
            if self.global_keyprefix:
                keys = [self.global_keyprefix + key for key in keys]
            command = ["EVAL", CLAIM_SCRIPT, len(keys), *keys, time.time()]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        pending, self._pending = self._pending, None
        if pending is None:
            return self._read_brpop(**options)
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVAL", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except self.ResponseError as exc:
                log.error("Redis refused the claim script (%s): taking messages with BRPOP, "
                          "which loses the message a worker is killed holding", exc)
                self._claims_refused = True
                raise Empty() from exc
            if pending == "wait" or not reply:
                self._idle = pending == "claim"
                raise Empty()
            self._idle = False
            index, item, recorded = reply
            self._deliver_claimed(self._claim_queues[int(index) - 1], item, bool(recorded))
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _deliver_claimed(self, queue: str, item: bytes, recorded: bool) -> None:
        self._queue_cycle.rotate(queue)
        message = self._decode(item, queue)
        if message is None:
            if recorded:  # a message by its shape, refused on a closer look
                tag = message_tag(item)
                if tag is not None:
                    self.qos._remove_from_indices(tag).execute()
            return
        if not recorded:  # a message the script could not parse: kombu's way
            self.connection._deliver(message, queue)
            return
        self.delivering_claimed = message["properties"]["delivery_tag"]
        try:
            self.connection._deliver(message, queue)
        finally:
            self.delivering_claimed = None

    # kombu 5.7's _brpop_read, with the decoding line replaced by
    # self._decode(); tests/unit/test_kombu_pins.py pins the original.

    def _read_brpop(self, **options: Any) -> bool:
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
            message = self._decode(item, dest)
            if message is not None:
                self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()


def message_tag(item: bytes) -> str | None:
    """The delivery tag of a queue item, if it names one."""
    try:
        tag = json.loads(item)["properties"]["delivery_tag"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    return tag if isinstance(tag, str) else None


class RejectingChannel(kombu_redis.Channel):
    """kombu's Redis channel, with each popped item checked first: one that
    is not a message is set aside instead of stopping the worker."""

    rejected_keep = REJECTED_KEEP
    rejected_max_chars = REJECTED_RAW_CHARS

    def _checked(self, item: bytes, queue: str) -> Any:
        message, reason = why_not_a_message(item)
        if reason is not None:
            self.set_aside(item, queue, reason)
        return message

    def set_aside(self, item: bytes, queue: str, reason: str) -> None:
        raw = bytes_to_str(item) if isinstance(item, bytes) else str(item)
        record = json.dumps(
            {"queue": queue, "reason": reason, "rejected_at": time.time(),
             "raw": raw[:self.rejected_max_chars], "raw_chars": len(raw)},
            ensure_ascii=True,
        )
        try:
            with self.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
                pipe.lpush(rejected_list(queue), record)
                pipe.ltrim(rejected_list(queue), 0, self.rejected_keep - 1)
                pipe.incr(rejected_counter(queue))
                pipe.execute()
        except self.connection_errors:
            log.exception("could not keep a rejected item of %s", queue)
        log.error("rejected an item of queue %s (%s); kept in %s", queue, reason, rejected_list(queue))

    def _decode(self, item: bytes, queue: str) -> Any:
        return self._checked(item, queue)

    # kombu 5.7's _get, with the decoding line replaced by self._checked();
    # tests/unit/test_kombu_pins.py pins the original.

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


class Channel(RejectingChannel, ClaimingChannel, FastEnvelopeChannel, ReusedClientChannel):
    """The channel of :class:`SafeRedisTransport`: all four of the above."""

    QoS = QoS
    from_transport_options = (*kombu_redis.Channel.from_transport_options,
                              "claim_idle_wait", "rejected_keep", "rejected_max_chars")


class SafeRedisTransport(kombu_redis.Transport):
    Channel = Channel
