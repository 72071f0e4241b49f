"""RetryService: tries a step again by its policy, and resumes failed executions.

Retries happen inside the task run that is executing the workflow: the worker
process that holds the execution sleeps the backoff and tries again. The
alternative, re-enqueueing with a countdown, would hand the execution to
whichever worker takes the message, with the message held unacknowledged by
a worker until its ETA (and re-delivered by Redis after the visibility
timeout); keeping the retry local keeps one process in charge of an execution
from claim to end, which is what keeps its events ordered. The price is a
worker slot held during backoff, which ``MAX_BACKOFF_SECONDS`` bounds.

``resume`` puts a failed execution back in the queue; the brain then skips the
steps that succeeded (their outputs are reloaded from ``execution_steps``)
and runs from the failed one, with a fresh retry budget.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from webapp.execlog import ExecutionLogger
from webapp.execlog import execution_logger as _default_logger

from ..extensions import db
from ..models import Execution, ExecutionStep, utcnow
from .definition import Step
from .enqueue import enqueue
from .error_handler import Failure
from .errors import ExecutionNotFound, ExecutionNotResumable
from .current import current_notifier
from .notify import NotificationService
from .steplog import StepLogger
from .tally import AttemptLogger

T = TypeVar("T")


class StepFailed(Exception):
    """A try of a step failed; ``failure`` says how (already recorded)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class RetryService:
    def __init__(
        self,
        notifier: NotificationService,
        logger: ExecutionLogger | AttemptLogger | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.notifier = notifier
        self.logger = _default_logger if logger is None else logger
        self.sleep = sleep

    def run(self, execution_id: uuid.UUID, step: Step, attempt: Callable[[], T]) -> T:
        """Call ``attempt`` until it returns, or raises a ``StepFailed`` that
        ``step.retry`` does not retry (that one propagates)."""
        log = StepLogger(str(execution_id), step.name, self.logger)
        started = time.perf_counter()
        tries = 1
        while True:
            try:
                output = attempt()
            except StepFailed as failed:
                failure = failed.failure
                if not step.retry.should_retry(failure.kind, tries):
                    raise
                self._wait(execution_id, step, failure, tries, log)
                tries += 1
                continue
            if tries > 1:
                log.log_retry_complete(
                    f"step {step.name} succeeded on try {tries}",
                    duration_ms=(time.perf_counter() - started) * 1000.0,
                    details={"tries": tries},
                )
            return output

    def _wait(
        self, execution_id: uuid.UUID, step: Step, failure: Failure, tries: int, log: StepLogger
    ) -> None:
        delay = step.retry.delay(tries)
        self.notifier.publish(execution_id, "step_retrying", {
            "step": step.name,
            "attempt": failure.attempt,
            "next_attempt": (failure.attempt or 0) + 1,
            "delay_s": round(delay, 3),
            "kind": failure.kind,
        })
        db.session.commit()
        log.log_retry_start(
            f"step {step.name} failed ({failure.kind}); try {tries + 1} of "
            f"{step.retry.max_attempts} in {delay:.2f} s",
            details={"attempt": failure.attempt, "delay_s": delay, "error": failure.to_json()},
        )
        self.sleep(delay)

    def resume(self, execution_id: uuid.UUID | str) -> Execution:
        """Queue a failed execution again, to run from its failed step.

        ``ExecutionNotFound`` for an unknown id, ``ExecutionNotResumable``
        unless the execution is failed (checked and changed in one UPDATE, so
        two resumes cannot both win), ``EnqueueFailed`` when the broker
        refuses the task.
        """
        key = parse_execution_id(execution_id)
        execution = db.session.get(Execution, key)
        if execution is None:
            raise ExecutionNotFound(f"no execution {execution_id}")
        resumed = db.session.execute(
            sa.update(Execution)
            .where(Execution.id == key, Execution.status == "failed")
            .values(status="queued", error=sa.null(), finished_at=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if not resumed:
            db.session.rollback()
            raise ExecutionNotResumable(
                f"execution {key} is {execution.status}; only a failed execution can be resumed"
            )
        db.session.execute(
            sa.update(ExecutionStep)
            .where(ExecutionStep.execution_id == key, ExecutionStep.status != "succeeded")
            .values(status="pending", error=sa.null(), started_at=None, finished_at=None, duration_ms=None)
            .execution_options(synchronize_session=False)
        )
        steps = db.session.scalars(
            sa.select(ExecutionStep).where(ExecutionStep.execution_id == key).order_by(ExecutionStep.position)
        ).all()
        completed = [step.name for step in steps if step.status == "succeeded"]
        remaining = [step.name for step in steps if step.status != "succeeded"]
        from_step = remaining[0] if remaining else None
        workflow = execution.workflow
        self.notifier.publish(key, "execution_resumed",
                              {"from_step": from_step, "completed_steps": completed})
        db.session.commit()
        self.logger.log_retry_start(
            str(key), f"resuming workflow {workflow} from step {from_step}",
            details={"from_step": from_step, "completed_steps": completed},
        )
        enqueue(key)
        return execution


def parse_execution_id(value: uuid.UUID | str) -> uuid.UUID:
    """An execution id; ``ExecutionNotFound`` for text that is not a UUID."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ExecutionNotFound(f"no execution {value!r}: not a UUID") from None


def resume_execution(execution_id: uuid.UUID | str) -> Execution:
    """``RetryService.resume`` for the current app (CLI and API)."""
    return RetryService(current_notifier()).resume(execution_id)
