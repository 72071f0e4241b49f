"""ErrorHandler: what went wrong in a step, recorded where people look.

A failure is classified as

* ``invalid_input``: ``InvalidInput`` (raised by the runner, or by its input
  schema): retrying cannot help;
* ``transient``: ``TransientError``, ``TimeoutError``, ``ConnectionError``:
  worth retrying;
* ``runner_bug``: any other exception, including a broken output contract.

and recorded as the ``error`` JSON of the step (and, when it ends the
execution, of the execution): ``{"kind", "message", "step", "attempt",
"exception"}`` plus ``fields`` (invalid input) and ``details`` when there are
some, and as an error record in the execution's logs, with the traceback for
a runner bug.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from webapp.execlog import ExecutionLogger, LogCategory
from webapp.execlog import execution_logger as _default_logger

from ..extensions import db
from ..models import Execution, ExecutionStep, utcnow
from .errors import INVALID_INPUT, RUNNER_BUG, TRANSIENT, InvalidInput, TransientError
from .tally import AttemptLogger

if TYPE_CHECKING:
    from .notify import NotificationService

#: Exceptions worth another try.
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (TransientError, TimeoutError, ConnectionError)
#: The tail of a runner bug's traceback kept in the logs.
TRACEBACK_CHARS = 4000


@dataclass(frozen=True)
class Failure:
    """A classified failure, as recorded in ``error`` columns."""

    kind: str
    message: str
    step: str | None = None
    attempt: int | None = None
    exception: str | None = None
    fields: dict[str, Any] | None = None
    details: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "kind": self.kind,
            "message": self.message,
            "step": self.step,
            "attempt": self.attempt,
            "exception": self.exception,
        }
        if self.fields:
            error["fields"] = self.fields
        if self.details:
            error["details"] = self.details
        return error


class ErrorHandler:
    """Classifies failures and records them on steps, executions and logs."""

    def __init__(self, logger: ExecutionLogger | AttemptLogger | None = None) -> None:
        self.logger = _default_logger if logger is None else logger

    @staticmethod
    def classify(exc: BaseException) -> str:
        if isinstance(exc, InvalidInput):
            return INVALID_INPUT
        if isinstance(exc, TRANSIENT_EXCEPTIONS):
            return TRANSIENT
        return RUNNER_BUG

    def failure(self, exc: BaseException, step: str, attempt: int) -> Failure:
        kind = self.classify(exc)
        message = str(exc) or type(exc).__name__
        if kind == RUNNER_BUG:
            message = f"{type(exc).__name__}: {message}"
        fields = details = None
        if isinstance(exc, InvalidInput):
            fields, details = exc.fields, exc.details
        return Failure(kind, message, step, attempt, type(exc).__name__, fields, details)

    def step_failed(
        self, exc: BaseException, step: ExecutionStep, attempt: int, duration_ms: float
    ) -> Failure:
        """Record a failed try of ``step`` (not yet committed); once it is
        committed, log it with :meth:`log_step_failed`."""
        failure = self.failure(exc, step.name, attempt)
        step.status = "failed"
        step.error = failure.to_json()
        step.finished_at = utcnow()
        step.duration_ms = duration_ms
        return failure

    def log_step_failed(
        self, trace_id: str, failure: Failure, duration_ms: float, exc: BaseException
    ) -> None:
        """The error record of a failed try (with the traceback of a runner bug)."""
        details = failure.to_json()
        if failure.kind == RUNNER_BUG:
            details["traceback"] = "".join(traceback.format_exception(exc))[-TRACEBACK_CHARS:]
        self.logger.error(
            trace_id, LogCategory.WORKFLOW,
            f"step {failure.step} failed ({failure.kind}): {failure.message}",
            step=failure.step, duration_ms=duration_ms, details=details,
        )

    def fail_execution(
        self, execution: Execution, failure: Failure, notifier: NotificationService,
        duration_ms: float | None = None,
    ) -> None:
        """End ``execution`` with ``failure``: record it, publish
        ``execution_failed`` and commit both with whatever else the session
        holds, then log it. The record follows the commit, so that a process
        that dies in between never leaves a log that says the execution
        failed while the database says otherwise."""
        execution_id, workflow = execution.id, execution.workflow
        execution.status = "failed"
        execution.error = failure.to_json()
        execution.finished_at = utcnow()
        execution.current_step = failure.step
        event: dict[str, Any] = {"error": failure.to_json()}
        if duration_ms is not None:
            event["duration_ms"] = duration_ms
        notifier.publish(execution_id, "execution_failed", event)
        db.session.commit()
        where = f" at step {failure.step}" if failure.step else ""
        self.logger.error(
            str(execution_id), LogCategory.WORKFLOW,
            f"workflow {workflow} failed{where} ({failure.kind}): {failure.message}",
            step=failure.step, duration_ms=duration_ms, details=failure.to_json(),
        )
