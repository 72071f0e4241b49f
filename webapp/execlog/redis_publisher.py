"""Messages published to a queue of kombu's Redis transport, on a Redis
connection held for the purpose.

On Redis a kombu message is a JSON envelope (body, headers, properties)
``LPUSH``ed to the queue's list. kombu's way there (``basic_publish``, its
``_put``, a redis-py client command) takes a connection from the pool and
gives it back around every command, checks it for unread data with a system
call and passes through several layers of Python: about 50 us of CPU a log
batch, measured (``bench/producer.py``), half again what the ``LPUSH``
itself costs. This publisher writes the same envelope to the same list, one
command a message, on one connection it holds until it is closed.

The envelope is kombu 5.7's: ``prepare_message`` builds it, and what
``basic_publish`` adds for the default exchange (``body_encoding``, a
``delivery_tag``, ``delivery_info``) is added the way its
``_inplace_augment_message`` does. ``tests/unit/test_kombu_pins.py`` pins
those originals, and ``tests/integration/test_redis_publisher.py`` checks
that a message published here is the one kombu's own path publishes.

Only where kombu's ``_put`` would be a plain ``LPUSH`` (see
:meth:`RedisMessagePublisher.for_queue`): no global key prefix, no queue
expiry; the caller publishes through kombu otherwise.
"""

from __future__ import annotations

from typing import Any

import orjson
from kombu.transport import redis as kombu_redis
from kombu.utils.uuid import uuid

#: The exchange of every message published here: the default (anonymous)
#: one, whose routing key is the destination queue.
DEFAULT_EXCHANGE = ""


class RedisMessagePublisher:
    """``LPUSH`` kombu messages to one queue on a held Redis connection.

    Not thread-safe: one flusher thread uses it. A failed publish leaves the
    connection in an unknown state: the caller closes the publisher (which
    drops the connection) and makes a new one for the next message.
    """

    def __init__(self, channel: kombu_redis.Channel, queue: str, content_type: str,
                 content_encoding: str, headers: dict[str, Any], properties: dict[str, Any]) -> None:
        self.queue = queue
        # kombu's _put: the list of the message's priority (0 here: the
        # queue's own list).
        self.key = channel._q_for_pri(queue, 0)
        # The envelope's fixed part, as kombu builds it.
        template = channel.prepare_message("", 0, content_type, content_encoding, dict(headers),
                                           {**properties, "delivery_info": {}})
        self.content_type = template["content-type"]
        self.content_encoding = template["content-encoding"]
        self.properties = template["properties"]
        self.properties["body_encoding"] = channel.body_encoding
        self.properties["delivery_info"] = {"exchange": DEFAULT_EXCHANGE, "routing_key": queue}
        # The pool kombu's own commands (and publishes) take connections from.
        self._pool = channel.pool
        self._connection = self._pool.get_connection()

    @classmethod
    def for_queue(cls, channel: Any, queue: str, content_type: str, content_encoding: str,
                  headers: dict[str, Any], properties: dict[str, Any]) -> RedisMessagePublisher | None:
        """A publisher for ``queue``, or None where kombu's ``_put`` would do
        more than a plain ``LPUSH`` (another transport, a global key prefix,
        a queue that expires) or the headers are not plain JSON values."""
        if not isinstance(channel, kombu_redis.Channel):
            return None
        if channel.global_keyprefix or (channel._expires and queue in channel._expires):
            return None
        if channel.body_encoding.lower() != "utf-8":
            return None  # the body would need encoding (base64) first
        try:
            orjson.dumps({"headers": headers, "properties": properties})
        except TypeError:
            return None
        return cls(channel, queue, content_type, content_encoding, headers, properties)

    def envelope(self, body: str, headers: dict[str, Any], properties: dict[str, Any]) -> bytes:
        """The message as kombu puts it on the list: ``properties`` are the
        message's own (``correlation_id``), added to the fixed ones."""
        envelope_properties = {**self.properties, **properties, "delivery_tag": uuid()}
        return orjson.dumps({"body": body, "content-encoding": self.content_encoding,
                             "content-type": self.content_type, "headers": headers,
                             "properties": envelope_properties})

    def publish(self, body: str, headers: dict[str, Any], properties: dict[str, Any]) -> None:
        """One ``LPUSH``: returns once Redis answered, raises otherwise."""
        connection = self._connection
        if connection is None:
            raise ConnectionError("the publisher is closed")
        # As redis-py packs it: a large envelope is written as it is, after
        # the command's head, not copied into one buffer first (a copy of a
        # few hundred kilobytes, into fresh pages, held the GIL long enough
        # to triple the p99.9 of log() in the threads waiting for it).
        connection.send_packed_command(
            connection.pack_command("LPUSH", self.key, self.envelope(body, headers, properties)))
        connection.read_response()

    def close(self) -> None:
        """Give the connection back (disconnected: its state is unknown
        after a failure) to the pool it came from."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            self._pool.release(connection)
