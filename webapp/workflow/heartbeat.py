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

A worker that is alive but could not stamp for that long (its database was
unreachable) finds, at its next stamp, that the execution is no longer
``running``; the brain checks this before each step and before recording
the end, and stops without writing, so the verdict of the sweep stands.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from webapp.execlog import ExecutionLogger

from ..extensions import db
from ..models import Execution, ExecutionStep, utcnow
from .error_handler import ErrorHandler, Failure
from .errors import WORKER_LOST
from .notify import NotificationService

log = logging.getLogger(__name__)

#: Defaults of ``WORKFLOW_HEARTBEAT_SECONDS`` and ``WORKFLOW_STALE_SECONDS``.
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 60.0


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
    notifier: NotificationService, stale_seconds: float, logger: ExecutionLogger | None = None
) -> list[uuid.UUID]:
    """Fail every ``running`` execution not stamped for ``stale_seconds``
    (``worker_lost``); the ids failed, oldest stamp first."""
    errors = ErrorHandler(logger)
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    last_sign = sa.func.coalesce(Execution.heartbeat_at, Execution.started_at, Execution.updated_at)
    stalled = db.session.execute(
        sa.select(Execution.id, last_sign).where(Execution.status == "running", last_sign < cutoff)
        .order_by(last_sign)
    ).all()
    db.session.rollback()
    failed = []
    for execution_id, seen in stalled:
        # Taken in one UPDATE, so that a stamp or a second sweep in between wins.
        taken = db.session.execute(
            sa.update(Execution)
            .where(Execution.id == execution_id, Execution.status == "running", last_sign < cutoff)
            .values(status="failed", updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if not taken:
            db.session.rollback()
            continue
        _record_worker_lost(execution_id, seen, errors, notifier)
        failed.append(execution_id)
    return failed


def _record_worker_lost(
    execution_id: uuid.UUID, seen: datetime, errors: ErrorHandler, notifier: NotificationService
) -> None:
    """Record on a just-taken execution, its steps and its logs why it failed."""
    execution = db.session.get(Execution, execution_id, populate_existing=True)
    assert execution is not None
    steps = db.session.scalars(
        sa.select(ExecutionStep).where(ExecutionStep.execution_id == execution_id)
    ).all()
    cut = next((step for step in steps if step.status == "running"), None)
    failure = Failure(WORKER_LOST, f"the worker running the execution stopped giving signs of life "
                                   f"(last heartbeat {seen:%Y-%m-%dT%H:%M:%SZ})",
                      cut.name if cut else None, cut.attempts if cut else None,
                      details={"last_heartbeat": seen.isoformat()})
    for step in steps:
        if step is cut:
            step.status, step.error, step.finished_at = "failed", failure.to_json(), utcnow()
        elif step.status == "pending":
            step.status = "skipped"
    errors.execution_failed(execution, failure)
    notifier.publish(execution_id, "execution_failed", {"error": failure.to_json()})
