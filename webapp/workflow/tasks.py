"""The Celery task that runs an execution, on the ``workflows`` queue.

It acknowledges its message early (Celery's default), unlike the log-batch
task: a workflow may run longer than the Redis visibility timeout, and a late
ack would then have Redis hand the same message to a second worker while the
first still runs. The claim in ``WorkflowBrain.run`` (an UPDATE from
``queued``) makes any second delivery a no-op anyway. A worker killed in the
middle of an execution stops stamping its heartbeat, and ``fail_stalled``
(run by beat every minute) fails it as ``worker_lost``; any other failure of
the engine marks it failed (``internal_error``). Either way it can be resumed.
"""

from __future__ import annotations

import logging
import uuid

from celery import shared_task

from webapp.execlog import execution_logger

from .brain import WorkflowBrain
from ..names import FAIL_STALLED_TASK, RUN_TASK
from .current import current_notifier
from .heartbeat import fail_stalled as fail_stalled_executions
from .settings import current_settings

log = logging.getLogger(__name__)

#: Seconds the task waits for its execution logs to reach the broker, so
#: that they follow the final event closely.
LOG_FLUSH_TIMEOUT = 5.0


@shared_task(name=RUN_TASK, ignore_result=True, acks_late=False)
def run_execution(execution_id: str) -> str | None:
    try:
        key = uuid.UUID(execution_id)
    except (TypeError, ValueError):
        log.error("workflow.run: %r is not an execution id; message dropped", execution_id)
        return None
    brain = WorkflowBrain.for_current_app()
    try:
        return brain.run(key)
    except Exception as exc:
        log.exception("workflow.run: the engine failed on execution %s", key)
        try:
            brain.abandon(key, exc)
        except Exception:
            log.exception("workflow.run: execution %s could not be marked failed", key)
        return "failed"
    finally:
        execution_logger.flush(timeout=LOG_FLUSH_TIMEOUT)


@shared_task(name=FAIL_STALLED_TASK, ignore_result=True)
def fail_stalled() -> int:
    """Fail the executions whose worker stopped stamping them, or that no
    worker took; how many."""
    settings = current_settings()
    failed = fail_stalled_executions(current_notifier(), settings.stale_seconds,
                                     queued_stale_seconds=settings.queued_stale_seconds)
    for execution_id in failed:
        log.warning("workflow.fail_stalled: execution %s lost its worker or its message; failed",
                    execution_id)
    return len(failed)
