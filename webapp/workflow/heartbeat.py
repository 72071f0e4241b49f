"""The heartbeat of a running execution, and the sweep that fails the ones
whose worker is gone.

The run task acknowledges its message when it starts (see :mod:`.tasks`), so
Celery cannot hand an execution to another worker when the one running it
dies: a SIGKILL, the OOM killer or a lost host would leave it ``running``
for ever. Instead, while a process runs an execution, a thread of that
process stamps ``executions.heartbeat_at`` every ``WORKFLOW_HEARTBEAT_SECONDS``
(one short UPDATE on a pooled connection, held only for that statement).
:func:`fail_stalled` (the beat task ``workflow.fail_stalled``, every minute,
and ``flask executions fail-stalled``) fails every ``running`` execution
whose stamp is older than ``WORKFLOW_STALE_SECONDS``, with the kind
``worker_lost``; like any failed execution it can then be resumed from its
failed step.

The run task's message is acknowledged before the execution is claimed,
so a worker that dies in between (or a message lost by the broker) leaves
the execution ``queued`` for ever, and its event streams waiting with it.
The same sweep fails every execution ``queued`` for longer than
``WORKFLOW_QUEUED_STALE_SECONDS`` (3600; above the longest wait the
``workflows`` queue may have) as ``lost_in_queue``, resumable like the rest.

A worker that is alive but could not stamp for that long (its database was
unreachable) finds, at its next stamp, that the execution is no longer
``running``; the brain checks this before each step and before recording
the end, and stops without writing, so the verdict of the sweep stands.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from webapp.execlog import ExecutionLogger

from ..extensions import db
from ..models import Execution, ExecutionStep, utcnow
from .error_handler import ErrorHandler, Failure
from .errors import LOST_IN_QUEUE, WORKER_LOST
from .notify import NotificationService

log = logging.getLogger(__name__)

#: Why an execution taken by the sweep failed: from its last sign of life
#: (or the time it was queued), the limit, and the step the loss cut.
Describe = Callable[[datetime, float, ExecutionStep | None], Failure]


class ExecutionLost(Exception):
    """The execution is no longer ``running`` under this process: the sweep
    failed it while this process could not stamp it."""


class Heartbeat:
    """A thread that stamps one execution's ``heartbeat_at`` while the
    ``with`` block runs; ``lost`` once a stamp finds it no longer running."""

    def __init__(self, engine: sa.engine.Engine, execution_id: uuid.UUID, interval: float) -> None:
        self.engine = engine
        self.execution_id = execution_id
        self.interval = interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{execution_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        """Raise ``ExecutionLost`` if a stamp found the execution taken away."""
        if self.lost:
            raise ExecutionLost(f"execution {self.execution_id} was failed while this process ran it "
                                "(no heartbeat for WORKFLOW_STALE_SECONDS)")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    self.lost = True
                    return
            except SQLAlchemyError as exc:
                log.warning("heartbeat of execution %s not stamped: %s", self.execution_id, exc)

    def beat(self) -> bool:
        """Stamp the execution; False when it is no longer running."""
        with self.engine.begin() as connection:
            return connection.execute(
                sa.update(Execution)
                .where(Execution.id == self.execution_id, Execution.status == "running")
                .values(heartbeat_at=utcnow())
            ).rowcount == 1


def fail_stalled(
    notifier: NotificationService, stale_seconds: float, logger: ExecutionLogger | None = None,
    queued_stale_seconds: float | None = None,
) -> list[uuid.UUID]:
    """Fail every ``running`` execution not stamped for ``stale_seconds``
    (``worker_lost``) and, with ``queued_stale_seconds``, every ``queued``
    one queued longer ago than that (``lost_in_queue``); the ids failed,
    running ones first, each group oldest first.

    Each execution is taken in one UPDATE and recorded in its own
    transaction, so a stamp, a claim or another sweep in between wins, and
    a sweep that stops half-way leaves the rest to the next one."""
    errors = ErrorHandler(logger)
    last_sign = sa.func.coalesce(Execution.heartbeat_at, Execution.started_at, Execution.updated_at)
    sweeps: list[tuple[str, Any, float, Describe]] = [("running", last_sign, stale_seconds, _worker_lost)]
    if queued_stale_seconds is not None:
        sweeps.append(("queued", Execution.updated_at, queued_stale_seconds, _lost_in_queue))
    failed = []
    for status, since, seconds, describe in sweeps:
        cutoff = utcnow() - timedelta(seconds=seconds)
        for execution_id, seen in _older_than(status, since, cutoff):
            if _take(execution_id, status, since, cutoff):
                _record_failure(execution_id, partial(describe, seen, seconds), errors, notifier)
                failed.append(execution_id)
    return failed


def _older_than(status: str, since: Any, cutoff: datetime) -> list[Any]:
    rows = db.session.execute(
        sa.select(Execution.id, since).where(Execution.status == status, since < cutoff).order_by(since)
    ).all()
    db.session.rollback()
    return list(rows)


def _take(execution_id: uuid.UUID, status: str, since: Any, cutoff: datetime) -> bool:
    """Fail the execution if it is still in ``status`` since before ``cutoff``."""
    taken = db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id, Execution.status == status, since < cutoff)
        .values(status="failed", updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not taken:
        db.session.rollback()
    return bool(taken)


def _worker_lost(seen: datetime, stale_seconds: float, cut: ExecutionStep | None) -> Failure:
    return Failure(WORKER_LOST, f"the worker running the execution stopped giving signs of life "
                                f"(last heartbeat {seen:%Y-%m-%dT%H:%M:%SZ})",
                   cut.name if cut else None, cut.attempts if cut else None,
                   details={"last_heartbeat": seen.isoformat()})


def _lost_in_queue(queued: datetime, stale_seconds: float, cut: ExecutionStep | None) -> Failure:
    return Failure(LOST_IN_QUEUE, f"no worker took the execution within {stale_seconds:g} s of its being "
                                  f"queued ({queued:%Y-%m-%dT%H:%M:%SZ}): its message was lost; resume it "
                                  "to queue it again", details={"queued_at": queued.isoformat()})


def _record_failure(
    execution_id: uuid.UUID, failure_for: Callable[[ExecutionStep | None], Failure], errors: ErrorHandler,
    notifier: NotificationService,
) -> None:
    """Record on a just-taken execution, its steps and its logs why it failed."""
    execution = db.session.get(Execution, execution_id, populate_existing=True)
    assert execution is not None
    steps = db.session.scalars(
        sa.select(ExecutionStep).where(ExecutionStep.execution_id == execution_id)
    ).all()
    cut = next((step for step in steps if step.status == "running"), None)
    failure = failure_for(cut)
    for step in steps:
        if step is cut:
            step.status, step.error, step.finished_at = "failed", failure.to_json(), utcnow()
        elif step.status == "pending":
            step.status = "skipped"
    errors.fail_execution(execution, failure, notifier)
