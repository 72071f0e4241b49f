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
from kombu.transport.pyamqp import Channel as AmqpChannel

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


class Consumer(CeleryConsumer):
    """Celery's consumer; messages it refuses are kept before they go."""

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
