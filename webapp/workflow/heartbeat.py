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
from datetime import timedelta
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from webapp.execlog import ExecutionLogger, LogCategory
from webapp.execlog import execution_logger as _default_logger

from ..extensions import db
from ..models import Execution, ExecutionStep, utcnow
from .error_handler import Failure
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
    logger = _default_logger if logger is None else logger
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    last_sign = sa.func.coalesce(Execution.heartbeat_at, Execution.started_at, Execution.updated_at)
    stalled = db.session.execute(
        sa.select(Execution.id, last_sign).where(Execution.status == "running", last_sign < cutoff)
        .order_by(last_sign)
    ).all()
    db.session.rollback()
    failed = []
    for execution_id, seen in stalled:
        if _fail_lost(execution_id, last_sign, cutoff, seen, notifier, logger):
            failed.append(execution_id)
    return failed


def _fail_lost(
    execution_id: uuid.UUID, last_sign: sa.ColumnElement, cutoff: object, seen: object,
    notifier: NotificationService, logger: ExecutionLogger,
) -> bool:
    """Fail one stalled execution, unless it moved on since it was read."""
    step = db.session.scalar(
        sa.select(ExecutionStep).where(ExecutionStep.execution_id == execution_id,
                                       ExecutionStep.status == "running")
    )
    name = step.name if step is not None else None
    attempt = step.attempts if step is not None else None
    failure = Failure(WORKER_LOST, f"the worker running the execution stopped giving signs of life "
                                   f"(last heartbeat {seen:%Y-%m-%dT%H:%M:%SZ})", name, attempt,
                      details={"last_heartbeat": seen.isoformat()})  # type: ignore[attr-defined]
    now = utcnow()
    taken = db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id, Execution.status == "running", last_sign < cutoff)
        .values(status="failed", error=failure.to_json(), finished_at=now, current_step=name, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not taken:
        db.session.rollback()
        return False
    db.session.execute(
        sa.update(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id, ExecutionStep.status == "running")
        .values(status="failed", error=failure.to_json(), finished_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.update(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id, ExecutionStep.status == "pending")
        .values(status="skipped")
        .execution_options(synchronize_session=False)
    )
    logger.error(str(execution_id), LogCategory.WORKFLOW,
                 f"execution failed{f' at step {name}' if name else ''} ({WORKER_LOST}): {failure.message}",
                 step=name, details=failure.to_json())
    notifier.publish(execution_id, "execution_failed", {"error": failure.to_json()})
    return True
