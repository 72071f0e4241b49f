"""The workflow engine: runner plugins, workflows, and running them.

Plugins import what they implement and raise from here::

    from webapp.workflow import InvalidInput, Runner, StepContext, TransientError
    from webapp.workflow import RetryPolicy, Step, Workflow
"""

from .definition import RetryPolicy, Step, Workflow
from .errors import InvalidInput, TransientError, UnknownWorkflow, WorkflowError, WorkflowUnavailable
from .extension import current_registry, init_app
from .runner import Runner, StepContext
from .steplog import StepLogger

__all__ = [
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
    "current_registry",
    "init_app",
]
