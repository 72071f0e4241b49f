"""The workflow engine: runner plugins, workflows, and running them.

Plugins import what they implement and raise from here::

    from webapp.workflow import InvalidInput, Runner, StepContext, TransientError
    from webapp.workflow import RetryPolicy, Step, Workflow

The app (CLI, API) starts and resumes executions with
:func:`start_execution` and :func:`resume_execution`; a Celery worker runs
them (:mod:`webapp.workflow.tasks`).
"""

from .definition import RetryPolicy, Step, Workflow
from .errors import (
    EnqueueFailed,
    ExecutionNotFound,
    ExecutionNotResumable,
    IdempotencyConflict,
    InvalidInput,
    TransientError,
    UnknownWorkflow,
    WorkflowError,
    WorkflowUnavailable,
)
from .current import current_notifier, current_registry
from .extension import init_app
from .retry import resume_execution
from .runner import Runner, StepContext
from .service import start_execution
from .steplog import StepLogger

__all__ = [
    "EnqueueFailed",
    "ExecutionNotFound",
    "ExecutionNotResumable",
    "IdempotencyConflict",
    "InvalidInput",
    "RetryPolicy",
    "Runner",
    "Step",
    "StepContext",
    "StepLogger",
    "TransientError",
    "UnknownWorkflow",
    "Workflow",
    "WorkflowError",
    "WorkflowUnavailable",
    "current_notifier",
    "current_registry",
    "init_app",
    "resume_execution",
    "start_execution",
]
