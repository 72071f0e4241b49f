"""The exceptions of the workflow engine.

Runners raise :class:`InvalidInput` (the input cannot be worked with: not
retried) and :class:`TransientError` (try again later: retried by the step's
policy); any other exception from a runner is a bug in it. The services raise
the :class:`WorkflowError` subclasses, each of which the HTTP API maps to one
status code (noted on each class).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: How the ErrorHandler classifies a failed step (``error["kind"]``).
INVALID_INPUT = "invalid_input"
TRANSIENT = "transient"
RUNNER_BUG = "runner_bug"
STEP_ERROR_KINDS = (INVALID_INPUT, TRANSIENT, RUNNER_BUG)
#: Failures of an execution that are not a step's: the workflow is not
#: (or no longer) runnable, the broker refused the task, the engine crashed.
WORKFLOW_UNAVAILABLE = "workflow_unavailable"
ENQUEUE_FAILED = "enqueue_failed"
INTERNAL_ERROR = "internal_error"
WORKER_LOST = "worker_lost"
#: A ``queued`` execution no worker took within WORKFLOW_QUEUED_STALE_SECONDS
#: (its message was lost between the broker's ack and the claim).
LOST_IN_QUEUE = "lost_in_queue"


class WorkflowError(Exception):
    """Base of the errors the workflow services raise to their callers."""


class InvalidInput(WorkflowError, ValueError):
    """The input cannot be worked with; retrying will not help (API: 422).

    ``fields`` maps input field names to messages (marshmallow's shape), so
    that a client can point at what to fix; ``details`` is any JSON the runner
    wants recorded with the error.
    """

    def __init__(
        self,
        message: str,
        *,
        fields: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields) if fields else None
        self.details = dict(details) if details else None


class TransientError(Exception):
    """A failure that may go away on its own (a timeout, a busy service):
    the step is retried by its policy."""


class UnknownWorkflow(WorkflowError, LookupError):
    """No workflow of that name is installed or configured (API: 404)."""


class WorkflowUnavailable(WorkflowError):
    """The workflow exists but is broken or disabled (API: 409); the
    message says why."""


class ExecutionNotFound(WorkflowError, LookupError):
    """No execution has that id (API: 404)."""


class ExecutionNotResumable(WorkflowError):
    """Only a failed execution can be resumed (API: 409)."""


class IdempotencyConflict(WorkflowError):
    """The idempotency key belongs to an execution of another workflow or
    input (API: 409)."""


class EnqueueFailed(WorkflowError):
    """The broker did not accept the task (API: 503). The execution is
    marked failed and can be resumed once the broker is back."""

    def __init__(self, message: str, execution_id: Any) -> None:
        super().__init__(message)
        self.execution_id = execution_id


class ContractViolation(Exception):
    """A runner returned something its contract forbids (not a JSON object,
    or not what its output schema describes): classified as a runner bug."""
