"""Where a batch of encoded rows goes: the Celery queue, or the database.

A sink's ``send(rows)`` takes the rows' wire bytes (:mod:`.wire`: a list, or
a :class:`~.wire.RowBatch` the flusher encoded a group at a time), returns when
they are safe at the other end (the broker accepted the message, or the
transaction committed) and raises otherwise; the caller
(:class:`~.delivery.Delivery`) decides what happens next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from kombu.entity import DELIVERY_MODES
from kombu.transport import virtual
from kombu.utils.uuid import uuid

from ..names import BATCH_CONTENT_TYPE, INSERT_BATCH_TASK, LOGS_QUEUE
from .rabbitmq import declare_queues, rejected_queues
from .redis_publisher import RedisMessagePublisher
from .wire import WIRE_VERSION, decode_rows, joined_rows

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.engine import Engine

#: Seconds a publish to RabbitMQ waits for the broker's confirm; without
#: one the batch goes to the spool.
CONFIRM_TIMEOUT = 10.0


class Sink(Protocol):
    name: str

    def send(self, rows: Sequence[bytes]) -> None: ...

    def after_fork(self) -> None:
        """Drop connections inherited from the parent process."""

    def close(self) -> None:
        """Close what it holds open (a connection is opened again on use)."""


class BatchPublisher:
    """One kept broker connection that publishes log batches as Celery task
    messages, each built with a small fixed cost.

    What does not change between batches is made once, here, through
    Celery's own message API (``app.amqp.as_task_v2``): the headers, the
    properties, the body around the rows, the queue's declaration. A batch
    then costs a task id, a copy of the headers and one publish of a body
    joined from the rows' bytes: no routing, no per-publish declarations, no
    signals, no serializer, no second encoding of the rows. On Redis the
    publish is a :class:`~.redis_publisher.RedisMessagePublisher`'s one
    ``LPUSH`` of the envelope kombu would write; elsewhere (RabbitMQ) the
    channel's own API (``prepare_message``, ``basic_publish``).
    ``Celery.send_task`` costs 0.25 to 0.45 ms of CPU a message even for a
    one-element ``args`` (measured here); this costs what the broker's
    client does.

    The message is an ordinary ``execlog.insert_batch`` task message of
    protocol 2 on the queue: any worker of the project consumes it, Flower
    shows it. It goes through the default exchange with the queue's name as
    routing key, which for Redis is one ``LPUSH`` (a named exchange costs a
    lookup of its bindings first). On RabbitMQ (``confirm_publish`` in the
    broker's transport options) ``publish`` returns only once the broker
    confirmed the message, and raises when it nacks it, cannot route it, or
    gives no answer within :data:`CONFIRM_TIMEOUT`; its queue and the queue
    of its dead letters are declared as :mod:`.rabbitmq` says.
    """

    def __init__(self, celery: Celery, queue: str) -> None:
        self.queue = queue
        # A virtual transport (Redis) puts the body in a JSON envelope:
        # "utf-8" keeps it as the JSON text it is, where kombu's default
        # (base64) costs a pass over it, a third more bytes to move and
        # store, and the decoding back on the worker. The message says so
        # (its ``body_encoding``), so any kombu consumer reads it.
        self.connection = celery.connection_for_write(transport_options={"body_encoding": "utf-8"})
        #: RabbitMQ: every publish waits for the broker's confirm (the
        #: connection's confirm_publish), and one it cannot route fails.
        self.confirmed = self.connection.transport.driver_type == "amqp"
        try:
            self.connection.ensure_connection(max_retries=1)
            self.channel = self.connection.default_channel
            queues = [celery.amqp.queues[queue]]
            if self.confirmed:
                queues += rejected_queues(celery, [queue])  # where its dead letters go
            declare_queues(self.channel, queues)
            self.text_body = isinstance(self.channel, virtual.Channel)
        except BaseException:
            self.connection.release()
            raise
        template = celery.amqp.as_task_v2(
            "", INSERT_BATCH_TASK, args=(WIRE_VERSION, []), kwargs={}, argsrepr="", kwargsrepr="{}",
            ignore_result=True,
        )
        self.headers = template.headers
        self.properties = {**template.properties,
                           "delivery_mode": DELIVERY_MODES.get(celery.conf.task_default_delivery_mode,
                                                               celery.conf.task_default_delivery_mode)}
        _args, kwargs, embed = template.body
        self.body_head = b"[[%d,[" % WIRE_VERSION
        self.body_tail = b"]]," + orjson.dumps(kwargs) + b"," + orjson.dumps(embed) + b"]"
        #: On Redis: the same message, published on a connection of its own
        #: (about 50 us less CPU a batch; see :mod:`.redis_publisher`).
        self.redis: RedisMessagePublisher | None = None
        if not self.confirmed:
            try:
                self.redis = RedisMessagePublisher.for_queue(self.channel, queue, BATCH_CONTENT_TYPE, "utf-8",
                                                             self.headers, self.properties)
            except BaseException:
                self.connection.release()
                raise

    def publish(self, rows: Sequence[bytes]) -> None:
        task_id = uuid()
        headers = self.headers.copy()
        headers["id"] = headers["root_id"] = task_id
        headers["argsrepr"] = f"({WIRE_VERSION}, <{len(rows)} rows>)"
        body = self.body_head + joined_rows(rows) + self.body_tail
        if self.redis is not None:
            self.redis.publish(body.decode(), headers, {"correlation_id": task_id})
            return
        properties = self.properties.copy()
        properties["correlation_id"] = task_id
        channel = self.channel
        message = channel.prepare_message(body.decode() if self.text_body else body, 0,
                                          BATCH_CONTENT_TYPE, "utf-8", headers, properties)
        if self.confirmed:
            channel.basic_publish(message, exchange="", routing_key=self.queue, mandatory=True,
                                  confirm_timeout=CONFIRM_TIMEOUT)
        else:
            channel.basic_publish(message, exchange="", routing_key=self.queue)

    def close(self) -> None:
        try:
            if self.redis is not None:
                self.redis.close()
        finally:
            self.connection.release()


class CelerySink:
    """Publishes each batch as one ``execlog.insert_batch`` task message on
    ``queue``, through a :class:`BatchPublisher` kept between batches.

    A failed publish closes the connection; the next batch opens a new one
    (the delivery chain spools the failed batch and decides when to try).
    """

    name = "celery"

    def __init__(self, celery: Celery, *, queue: str = LOGS_QUEUE) -> None:
        self.celery = celery
        self.queue = queue
        self._publisher: BatchPublisher | None = None
        #: A forked child's copy of its parent's publisher: never used, never
        #: closed (closing would shut the parent's socket), kept referenced.
        self._inherited: BatchPublisher | None = None

    def send(self, rows: Sequence[bytes]) -> None:
        publisher = self._publisher
        if publisher is None:
            publisher = self._publisher = BatchPublisher(self.celery, self.queue)
        try:
            publisher.publish(rows)
        except BaseException:
            self._publisher = None
            _close_quietly(publisher)
            raise

    def after_fork(self) -> None:
        self._inherited, self._publisher = self._publisher, None

    def close(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            _close_quietly(publisher)


def _close_quietly(publisher: BatchPublisher) -> None:
    try:
        publisher.close()
    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
        pass


class DatabaseSink:
    """Inserts a batch itself, on an engine of its own (one connection).

    Used by the ``thread`` back end and by ``EXECLOG_FALLBACK=database``; the
    web tier's pool is never touched.
    """

    name = "database"

    def __init__(self, engine: Engine, store: Any) -> None:
        self.engine = engine
        self._store = store

    def send(self, rows: Sequence[bytes]) -> None:
        self._store(self.engine, decode_rows(rows))

    def after_fork(self) -> None:
        self.engine.dispose(close=False)

    def close(self) -> None:
        """The engine's pool stays: it is this process's, for the next batch."""
