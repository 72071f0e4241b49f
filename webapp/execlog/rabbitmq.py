"""RabbitMQ: the queues declared as configured, and checked when a process starts.

With ``CELERY_BROKER_URL=amqp://...`` (:func:`webapp.config.rabbitmq_queues`)
``logs`` and ``workflows`` are durable quorum queues, replicated across the
cluster, with a delivery limit and their dead letters in ``<queue>.rejected``;
every publish waits for the broker's confirm (``confirm_publish``).

RabbitMQ refuses to declare a queue that exists with other arguments (a
classic ``logs`` from an earlier version of this project, say): the channel
closes with ``PRECONDITION_FAILED``. A worker that met this in its consumer
would log a channel error and reconnect for ever; here it is found when the
worker starts (:func:`check_worker_queues`), which then stops with an error
that names the queue and the fix. A producer's batch publisher declares its
queue the same way and says the same in its error, and its batches wait in
the spool meanwhile; the web API's ``/readyz`` declares them too, and fails
its broker check with the same text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from amqp.exceptions import PreconditionFailed

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Queue

log = logging.getLogger(__name__)

#: The exit status of a worker whose queues do not match (EX_CONFIG).
EXIT_CONFIG = 78


class QueueMismatch(RuntimeError):
    """A queue exists on the broker with arguments other than this app's."""


def is_rabbitmq(celery: Celery) -> bool:
    return celery.connection_for_write().transport.driver_type == "amqp"


def rejected_queues(celery: Celery, names: Iterable[str] | None = None) -> list[Queue]:
    """The ``<queue>.rejected`` queues of ``names`` (all by default)."""
    queues = celery.conf.get("rejected_queues") or ()
    if names is None:
        return list(queues)
    wanted = {f"{name}.rejected" for name in names}
    return [queue for queue in queues if queue.name in wanted]


def declare_queues(channel: Any, queues: Iterable[Queue]) -> None:
    """Declare each of ``queues`` on ``channel``; :class:`QueueMismatch`
    (the channel is then closed) when one exists with other arguments."""
    for queue in queues:
        try:
            queue.bind(channel).declare()
        except PreconditionFailed as exc:
            raise QueueMismatch(mismatch_message(queue, exc)) from exc


def mismatch_message(queue: Queue, exc: Exception) -> str:
    kind = (queue.queue_arguments or {}).get("x-queue-type", "classic")
    return (
        f"RabbitMQ refuses queue {queue.name!r} as this app declares it (a {kind} queue): "
        f"{getattr(exc, 'reply_text', exc)}. It exists with other arguments, a classic queue made by "
        f"an earlier version, say. To move it: stop the producers, let the workers empty it, delete "
        f"it (rabbitmqctl delete_queue {queue.name} -p <vhost>) and start again. To keep classic "
        f"queues (not replicated, no delivery limit) set CELERY_QUEUE_TYPE=classic."
    )


def declare_all(celery: Celery) -> None:
    """Declare every queue of the app and its rejected queue (raises
    :class:`QueueMismatch`, or the broker's connection error)."""
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3, interval_start=0.5, interval_step=1, timeout=5)
        channel = connection.channel()
        try:
            declare_queues(channel, [*celery.amqp.queues.values(), *rejected_queues(celery)])
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001 - closed by the broker already
                pass


def check_worker_queues(celery: Celery) -> None:
    """A worker's check at start (``worker_init``): declare its queues, or
    stop the worker with :data:`EXIT_CONFIG` and the fix when RabbitMQ
    refuses one. A broker that cannot be reached now is left to the
    worker, which waits for it."""
    if not is_rabbitmq(celery):
        return
    try:
        declare_all(celery)
    except QueueMismatch as exc:
        log.critical("%s", exc)
        raise SystemExit(EXIT_CONFIG) from exc
    except celery.connection_for_write().connection_errors as exc:
        log.warning("RabbitMQ cannot be reached to check the queues now (%s); the worker waits for it", exc)
