"""The worker side: the Celery task that stores one batch of log records.

Delivery guarantees it relies on (see docs/ and DESIGN.md): the message is
acknowledged only after the transaction committed (``acks_late``), is put
back when the worker process dies mid-task (``reject_on_worker_lost``), and a
database outage makes the task retry with exponential backoff, for as long as
it lasts, while the batch waits in the broker. Rows are idempotent (their ids),
so a batch stored twice leaves one copy.
"""

from __future__ import annotations

import logging
import math
import random
import weakref
from typing import Any

from celery import shared_task
from flask import current_app

from . import metrics
from .extension import store_engine
from ..names import BATCH_SERIALIZER, INSERT_BATCH_TASK
from .store import StoreResult, TransientStoreError, dead_letter_message, store_rows
from .together import Together, store_in_app
from .wire import NotABatch, unpack_batch

log = logging.getLogger(__name__)


def retry_countdown(retries: int, base: float, cap: float, *, whole_seconds: bool = False) -> float:
    """Exponential backoff with jitter: base * 2**retries, at most cap.

    ``whole_seconds``: rounded up to a whole number of seconds, at least 1,
    for a broker whose retries go through delayed delivery (see
    :func:`whole_second_countdowns`).
    """
    delay = min(cap, base * (2 ** min(retries, 30)))
    countdown = delay * random.uniform(0.5, 1.0)
    if whole_seconds:
        return max(1, math.ceil(countdown))
    return countdown


#: Per Celery app: whether its retries need whole-second countdowns.
_WHOLE_SECONDS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def whole_second_countdowns(app: Any) -> bool:
    """Whether the Celery app's broker is RabbitMQ (an ``amqp`` transport).

    Celery (5.5 and later) sends a task with a countdown to quorum queues
    through RabbitMQ's native delayed delivery, whose routing key it makes
    of ``int(countdown)``: below 1 s, kombu refuses it ("countdown must be a
    positive number"), ``Task.retry`` raises ``Reject(requeue=False)`` and
    the batch goes to ``logs.rejected``, never stored. Cached per app.
    """
    try:
        return _WHOLE_SECONDS[app]
    except (KeyError, TypeError):
        pass
    with app.connection_for_write() as connection:  # not connected: the URL's transport
        answer = connection.transport.driver_type == "amqp"
    try:
        _WHOLE_SECONDS[app] = answer
    except TypeError:
        pass
    return answer


@shared_task(
    name=INSERT_BATCH_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
    # A retried batch is published again with the batches' own serializer.
    serializer=BATCH_SERIALIZER,
    # Batches that queued while the pool was busy are stored together.
    Strategy="webapp.execlog.together:together_strategy",
)
def insert_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Store a batch; dead-letter what cannot be stored; retry on outages.

    No exception may escape without the batch being either stored,
    dead-lettered or scheduled again: a failed task's message is acked.
    Called with a :class:`~.together.Together` (never a message's
    arguments: the worker's strategy makes it), stores several batches.
    """
    if len(args) == 1 and isinstance(args[0], Together):
        return store_in_app(store_engine(current_app), args[0])
    try:
        try:
            version, rows = unpack_batch(args, kwargs)
            result: StoreResult = store_rows(store_engine(current_app), rows, version)
        except (NotABatch, TransientStoreError):
            raise
        except Exception as exc:  # a bug of ours: keep the batch for a person
            log.exception("execlog: batch %s could not be stored", self.request.id)
            _dead_letter(self, args, kwargs, f"{type(exc).__name__}: {exc}")
            return None
    except NotABatch as exc:
        _dead_letter(self, args, kwargs, str(exc))
        return None
    except TransientStoreError as exc:
        _retry(self, exc)
    metrics.count_stored(result)
    return result.summary()


def _dead_letter(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], reason: str) -> None:
    try:
        dead_letter_message(store_engine(current_app), {"args": args, "kwargs": kwargs}, reason)
    except TransientStoreError as exc:
        _retry(task, exc)
    log.error("execlog: message %s dead-lettered: %s", task.request.id, reason)


def _retry(task: Any, exc: Exception) -> None:
    """Schedule the batch again after :func:`retry_countdown`.

    Not Celery's ``autoretry_for``/``retry_backoff``: its backoff is fixed
    on the task class when it is declared, in whole seconds from 1
    (``int(max(1.0, retry_backoff))``), with a full jitter that may give 0;
    these delays come from the app's settings (``EXECLOG_RETRY_BACKOFF``,
    which may be under a second) and, on RabbitMQ, must be whole seconds
    from 1 (:func:`whole_second_countdowns`).
    """
    settings = current_app.extensions["execlog"].settings
    countdown = retry_countdown(task.request.retries, settings.retry_backoff, settings.retry_backoff_max,
                                whole_seconds=whole_second_countdowns(task.app))
    log.warning(
        "execlog: batch %s not stored (%s); retry %d in %.1f s",
        task.request.id, exc, task.request.retries + 1, countdown,
    )
    raise task.retry(exc=exc, countdown=countdown) from exc
