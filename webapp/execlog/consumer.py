"""The worker's Celery consumer: messages Celery refuses are kept, not dropped.

Celery logs and drops a message whose body cannot be decoded, that names no
task or an unknown one, or that is otherwise invalid. This consumer first sets
the raw message aside in ``<queue>.rejected`` (Redis; see
:mod:`webapp.execlog.broker`), then lets Celery carry on as usual. Selected by
``worker_consumer`` in :func:`webapp.config.celery_config`; only worker
processes import it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.delayed_delivery import DelayedDelivery
from kombu.common import Broadcast
from kombu.exceptions import OperationalError
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange, declare_native_delayed_delivery_exchanges_and_queues,
)
from kombu.transport.pyamqp import Channel as AmqpChannel
from kombu.utils.url import maybe_sanitize_url

from .broker import Channel

log = logging.getLogger(__name__)


def set_aside_message(message: Any, reason: str) -> None:
    """Keep a message Celery refuses in ``<queue>.rejected`` on Redis. On
    RabbitMQ the broker does it: a message rejected without requeue is
    dead-lettered there (webapp.config.rabbitmq_queues)."""
    channel = getattr(message, "channel", None)
    queue = (message.delivery_info or {}).get("routing_key") or "unknown"
    if isinstance(channel, Channel):
        raw = json.dumps(getattr(message, "_raw", None) or {"body": repr(message.body)},
                         default=repr).encode()
        channel.set_aside(raw, queue, reason)
    else:
        log.error("rejected a message of queue %s: %s", queue, reason)


def dead_lettered_by_broker(message: Any) -> bool:
    """Whether rejecting ``message`` hands it to ``<queue>.rejected`` (RabbitMQ)."""
    return isinstance(getattr(message, "channel", None), AmqpChannel)


class ClusterDelayedDelivery(DelayedDelivery):
    """Celery's native delayed delivery (RabbitMQ quorum queues), set up
    through the first node of the cluster that answers.

    Celery's step sets it up through every URL of ``CELERY_BROKER_URL``, each
    with retries, whenever the consumer (re)connects: with one node of a
    three-node cluster dead, workers waited some 17 s on it before they took
    messages again (the container suite's cluster scenario). The exchanges,
    queues and bindings it declares belong to the cluster, so one node that
    answers is enough; each URL is tried once, in turn.
    """

    def start(self, c: Any) -> None:
        app = c.app
        queue_type = app.conf.broker_native_delayed_delivery_queue_type
        for url in str(app.conf.broker_url).split(";"):
            connection = app.connection_for_write(url=url)
            try:
                with connection:
                    connection.ensure_connection(max_retries=0)
                    declare_native_delayed_delivery_exchanges_and_queues(connection, queue_type)
                    for queue in app.amqp.queues.values():
                        if not isinstance(queue, Broadcast):
                            bind_queue_to_native_delayed_delivery_exchange(connection, queue)
                return
            except (OperationalError, OSError, *connection.connection_errors) as exc:
                log.warning("delayed delivery not set up through %s (%s); trying the next node",
                            maybe_sanitize_url(url), exc)
        log.critical("delayed delivery could not be set up through any node of CELERY_BROKER_URL: "
                     "retries with a countdown wait in the workers until it is")


class Consumer(CeleryConsumer):
    """Celery's consumer; messages it refuses are kept before they go, and
    on a RabbitMQ cluster delayed delivery is set up through one node that
    answers (:class:`ClusterDelayedDelivery`)."""

    class Blueprint(CeleryConsumer.Blueprint):
        default_steps = [
            "webapp.execlog.consumer:ClusterDelayedDelivery" if step.endswith(":DelayedDelivery") else step
            for step in CeleryConsumer.Blueprint.default_steps
        ]

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        if dead_lettered_by_broker(message):
            # Celery acknowledges such a message (gone); rejected, RabbitMQ
            # dead-letters it into <queue>.rejected.
            queue = (message.delivery_info or {}).get("routing_key") or "unknown"
            log.error("rejected a message of queue %s: body cannot be decoded: %s", queue, exc)
            message.reject(requeue=False)
            return
        set_aside_message(message, f"body cannot be decoded: {exc}")
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        set_aside_message(message, "not a task message (no task name)")
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        set_aside_message(message, f"unknown task: {exc}")
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        set_aside_message(message, f"invalid task message: {exc}")
        super().on_invalid_task(body, message, exc)
