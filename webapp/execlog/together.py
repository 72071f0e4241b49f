"""The worker's strategy for ``insert_batch``: bodies decoded once, in the
pool, and the batches that queued while the pool was busy stored together.

A worker process stored a batch of 1,000 records in about 10 ms, then waited
6 to 8 ms for the next, which held one worker process to about 0.66x of what
``COPY`` alone stores. Two costs of Celery's default strategy made the wait,
both in the worker's main process, which hands every message to the pool:

- Celery's :class:`~celery.worker.request.Request` decodes each message's
  body in the main process and pickles the decoded arguments to the pool
  process along with the body, which that process decodes again: some 4 ms
  per batch of the main process, spent while the pool process waited
  (:data:`NOT_DECODED`).
- The handover is paid per message. When the ``logs`` queue is deep, the
  batches that waited in the main process while every pool process was
  busy go to the pool as one job, stored in one ``COPY`` and one
  transaction (:class:`Combiner`).

What stays as it was:

- Each batch is still one ordinary Celery task message, received, reserved,
  started and acknowledged as a :class:`~celery.worker.request.Request`
  (its events, ``celery inspect``, Flower). Acks stay late: each message of
  a job is acknowledged after the job's transaction committed; a pool
  process that dies mid-job gives each message back
  (``reject_on_worker_lost``). Rows are idempotent, so a batch stored twice
  leaves one copy.
- Light traffic waits for nothing: a batch that finds a pool process free
  is handed over at once, alone. Only batches that arrive while every
  process is busy are combined, at most as many as the broker lets the
  worker hold unacknowledged (``CELERY_PREFETCH_MULTIPLIER`` x concurrency)
  and at most :data:`MAX_TOGETHER`.
- Anything but the plain case goes Celery's way, message by message: a
  message with an ETA (a retry's countdown) or an expiry, one delivered
  again (after its process died), or one of another serializer or
  protocol, never reaches this strategy's path
  (:func:`combinable`); in the pool process, a message that is not
  ``(version, rows)`` and every batch of a store that failed (a database
  outage: each retries with its own backoff) run as the task, traced, as
  the default strategy would run them. A body that is not JSON at all is
  dead-lettered, as a message that is not a batch is.

Not ``celery-batches`` (0.11, read for this): it buffers requests until a
count or a timer (light traffic waits for the timer), still builds Celery's
request and so decodes every body in the main process, acknowledges late
only from the job's success callback (a pool process that dies leaves its
messages unacknowledged until the connection closes), and hands the task a
list of requests, so the per-message retries and dead letters would be
written again around it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from billiard.einfo import ExceptionInfo
from celery import current_app as current_celery_app, signals
from celery.exceptions import Reject
from celery.app.trace import LOG_SUCCESS, fast_trace_task, logger as trace_log, trace_task_ret
from celery.utils.imports import symbol_by_name
from celery.worker.request import create_request_cls
from celery.worker.state import task_reserved
from celery.worker.strategy import default as default_strategy

from . import metrics, serializer
from ..names import BATCH_CONTENT_TYPE, INSERT_BATCH_TASK
from .store import TransientStoreError, dead_letter_message, store_rows
from .wire import NotABatch, unpack_batch

log = logging.getLogger(__name__)

#: The most batches one job stores (1,000-record batches: 16,000 rows).
MAX_TOGETHER = 16

#: What a pool process needs to run one message as Celery would: the
#: arguments of :meth:`celery.worker.request.Request.execute_using_pool`'s
#: trace (task name, id, request, body, content type, content encoding).
Job = tuple[str, str, dict[str, Any], bytes, str, str]
#: A message's outcome as Celery's trace reports it to the main process:
#: ``(failed, result or ExceptionInfo, runtime)``.
Outcome = tuple[int, Any, float]


#: A request's arguments as the main process knows them: not at all.
#: Celery's :class:`~celery.worker.request.Request` decodes every message's
#: body in the main process and puts the arguments in the request it
#: pickles to the pool process, which decodes the body again: for a batch
#: of 1,000 records, some 4 ms of the main process (decoding, then
#: pickling the rows once more), which held one worker process to about
#: 0.66x of ``COPY``. Here the request is made as if decoded, with empty
#: arguments (events and logs show ``argsrepr``, from the headers), and
#: the pool process decodes the body, once.
NOT_DECODED: tuple[tuple[Any, ...], dict[str, Any], None] = ((), {}, None)


@dataclass(frozen=True)
class Together:
    """Several messages for one pool job. Made only here and handed to the
    pool by pickle: no message from a broker can carry one."""

    jobs: list[Job]
    #: Celery's trace for one message (the worker's choice of
    #: ``fast_trace_task`` or ``trace_task_ret``).
    trace: Callable[..., Outcome]

    def alone(self, job: Job) -> Outcome:
        """One message as the standard pool job runs it: the task, traced
        (its retries, dead letters, signals and result)."""
        try:
            return self.trace(*job)
        except Exception as exc:  # noqa: BLE001 - the trace raises only before the task runs
            return _failure(exc)


def combinable(message: Any, body: Any) -> bool:
    """Whether a message may share a job: a protocol-2 ``insert_batch``
    message of the batch serializer, due now, never expiring, and delivered
    for the first time. Checked on the headers alone; the body is decoded
    in the pool process.

    A message delivered again (its process died, or its worker) goes
    Celery's way, alone: a batch that kills the process storing it never
    takes other batches down with it twice, and on RabbitMQ never brings
    them nearer the queue's delivery limit (``x-delivery-limit``)."""
    headers = message.headers or {}
    return (body is None and message.content_type == BATCH_CONTENT_TYPE
            and not headers.get("eta") and not headers.get("expires")
            and not (message.delivery_info or {}).get("redelivered"))


def together_strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Callable[..., Any]:
    """The task's ``Strategy``: Celery's own for what :func:`combinable`
    refuses; the rest reserved as Celery would, then handed to the pool by
    a :class:`Combiner`."""
    celery_way = default_strategy(task, app, consumer, **kwargs)
    hostname = consumer.hostname
    eventer = consumer.event_dispatcher
    sends_events = bool(eventer and eventer.enabled and task.send_events)
    request_class = create_request_cls(symbol_by_name(task.Request), task, consumer.pool, hostname,
                                       eventer, app=app)
    revoked = consumer.controller.state.revoked
    combiner = Combiner(consumer.pool, app)
    # Celery builds the strategies again each time the consumer (re)connects
    # and forgets the requests it reserved on the lost connection: their
    # messages come back from the broker. So are those still waiting here.
    previous = _combiners.get(task.name)
    if previous is not None:
        previous.forget_waiting()
    _combiners[task.name] = combiner
    utc = app.uses_utc_timezone()

    def on_message(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> Any:
        if not combinable(message, body):
            return celery_way(message, body, ack, reject, callbacks, **kw)
        request = request_class(
            message, on_ack=ack, on_reject=reject, app=app, hostname=hostname, eventer=eventer,
            task=task, connection_errors=consumer.connection_errors,
            body=NOT_DECODED, headers=message.headers, decoded=True, utc=utc,
        )
        if request.id in revoked and request.revoked():
            return None
        signals.task_received.send(sender=consumer, request=request)
        if sends_events:
            eventer.send("task-received", uuid=request.id, name=request.name, args=request.argsrepr,
                         kwargs=request.kwargsrepr, root_id=request.root_id, parent_id=request.parent_id,
                         retries=request.request_dict.get("retries", 0), eta=None, expires=None)
        task_reserved(request)
        for callback in callbacks or ():
            callback(request)
        combiner.add(request)
        return None

    return on_message


#: This process's combiner of each task, the one of its consumer's latest connection.
_combiners: dict[str, Combiner] = {}


class Combiner:
    """Hands reserved requests to the pool: alone while a process is free,
    together while every process is busy. Called from the worker's event
    loop and from the pool's callbacks (threads of a thread pool; inside
    ``apply_async`` itself for the solo pool), hence the reentrant lock."""

    def __init__(self, pool: Any, app: Any) -> None:
        self.pool = pool
        self.trace = fast_trace_task if app.use_fast_trace_task else trace_task_ret
        self.waiting: deque[Any] = deque()
        self.running = 0
        self.lock = threading.RLock()

    def add(self, request: Any) -> None:
        with self.lock:
            self.waiting.append(request)
            self._hand_over()

    def forget_waiting(self) -> None:
        """Drop the requests not handed over yet: their connection is gone,
        so they can be neither acknowledged nor rejected, and the broker
        delivers their messages again."""
        with self.lock:
            self.waiting.clear()

    def _hand_over(self) -> None:
        with self.lock:
            while self.waiting and self.running < max(1, self.pool.num_processes):
                take = min(len(self.waiting), MAX_TOGETHER)
                group = [self.waiting.popleft() for _ in range(take)]
                self.running += 1
                try:
                    self._apply(group)
                except BaseException:
                    self.running -= 1
                    raise

    def _apply(self, group: list[Any]) -> None:
        together = Together([job_of(request) for request in group], self.trace)
        self.pool.apply_async(
            store_together, args=(together,), correlation_id=group[0].id,
            accept_callback=lambda pid, accepted: [r.on_accepted(pid, accepted) for r in group],
            callback=lambda results: self._finished(group, results),
            error_callback=lambda exc_info: self._failed(group, exc_info),
        )

    def _finished(self, group: list[Any], outcomes: list[Outcome]) -> None:
        with self.lock:
            self.running -= 1
        for request, outcome in zip(group, outcomes):
            request.on_success(outcome)
        self._hand_over()

    def _failed(self, group: list[Any], exc_info: Any) -> None:
        """The job never returned (its pool process died, or a bug of
        ours): each message as Celery treats a lost task (given back, with
        ``reject_on_worker_lost``)."""
        with self.lock:
            self.running -= 1
        for request in group:
            request.on_failure(exc_info)
        self._hand_over()


def job_of(request: Any) -> Job:
    """The trace's arguments for a request made with :data:`NOT_DECODED`:
    the message's own body, decoded in the pool process."""
    message = request.message
    return (request.type, request.id, request.request_dict, message.body,
            message.content_type, message.content_encoding)


# -- in the pool process -------------------------------------------------------

def store_together(together: Together) -> list[Outcome]:
    """The pool's target: each message's outcome as Celery's trace reports
    it. Calls the ``insert_batch`` task with ``together``, so that it runs
    in the Flask app's context, as every task of the project does."""
    try:
        return current_celery_app.tasks[INSERT_BATCH_TASK](together)
    except Exception:  # a bug of ours: each message as Celery would run it
        log.exception("execlog: %d batches not stored together; storing each alone", len(together.jobs))
        return [together.alone(job) for job in together.jobs]


def store_in_app(engine: Any, together: Together) -> list[Outcome]:
    """Store the batches of each wire version in one ``store_rows`` call;
    dead-letter a body that does not decode; run every other message, and
    every message of a store that failed, alone, as Celery would have."""
    outcomes: list[Outcome | None] = [None] * len(together.jobs)
    by_version: dict[int, list[tuple[int, list[Any]]]] = {}
    for index, job in enumerate(together.jobs):
        try:
            args, kwargs, _embed = serializer.loads(job[3])
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            outcomes[index] = _dead_letter_body(engine, job, f"body cannot be decoded: {exc}")
            continue
        try:
            version, rows = unpack_batch(tuple(args), kwargs)
        except (NotABatch, TypeError, ValueError):
            continue  # alone, it is dead-lettered with its reason
        by_version.setdefault(version, []).append((index, rows))
    for version, batches in by_version.items():
        started = time.monotonic()
        try:
            stored = store_rows(engine, [row for _index, rows in batches for row in rows], version)
        except Exception as exc:  # noqa: BLE001 - alone, each retries or dead-letters on its own
            log.warning("execlog: %d batches not stored (%s); storing each alone", len(batches), exc)
            continue
        runtime = time.monotonic() - started
        metrics.count_stored(stored, len(batches))
        if len(batches) > 1:
            log.info("execlog: %d batches stored together in %.3f s: %d records, %d inserted, %d dead",
                     len(batches), runtime, stored.received, stored.inserted, stored.dead)
        for index, rows in batches:
            result = (stored.summary() if len(batches) == 1
                      else {"received": len(rows), "together": len(batches)})
            outcomes[index] = _succeeded(together.jobs[index], result, runtime)
    return [outcome if outcome is not None else together.alone(job)
            for job, outcome in zip(together.jobs, outcomes)]


def _succeeded(job: Job, result: dict[str, int], runtime: float) -> Outcome:
    """A message's outcome when its batch was stored, logged as Celery's
    trace logs a task that succeeded (one line per message, as before)."""
    text = repr(result)
    request = job[2]
    trace_log.info(LOG_SUCCESS, {
        "id": job[1], "name": job[0], "return_value": text, "runtime": runtime,
        "args": request.get("argsrepr", ""), "kwargs": request.get("kwargsrepr", ""),
    })
    return (0, text, runtime)


def _dead_letter_body(engine: Any, job: Job, reason: str) -> Outcome:
    """A body of the batch serializer that is not JSON (a foreign
    producer's): kept in the dead letters, as a message that is not a
    batch is; given back to the queue while the database is down."""
    body = job[3]
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        dead_letter_message(engine, {"id": job[1], "body": text}, reason)
    except TransientStoreError as exc:
        return _failure(Reject(exc, requeue=True))
    log.error("execlog: message %s dead-lettered: %s", job[1], reason)
    return (0, repr({"dead_lettered": reason}), 0.0)


def _failure(exc: BaseException) -> Outcome:
    """An outcome as Celery's trace reports a task that raised ``exc``."""
    try:
        raise exc
    except BaseException:
        return (1, ExceptionInfo(), 0.0)
