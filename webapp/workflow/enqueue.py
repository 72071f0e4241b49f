"""Hand an execution to the Celery queue ``workflows``.

Callers commit the execution as ``queued`` first, so that the worker finds it;
when the broker refuses the task the execution is marked failed
(``enqueue_failed``): it never sits ``queued`` with nothing to run it, and it
can be resumed once the broker is back.
"""

from __future__ import annotations

import uuid

from flask import current_app
from kombu.exceptions import OperationalError

from ..extensions import db
from ..models import Execution
from ..names import RUN_TASK
from .error_handler import ErrorHandler, Failure
from .errors import ENQUEUE_FAILED, EnqueueFailed
from .current import current_notifier

#: The task that runs an execution (routed to the ``workflows`` queue by
#: ``task_routes["workflow.*"]``).
#: How long a publish may keep trying before the caller hears of it.
PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


def enqueue(execution_id: uuid.UUID) -> None:
    """Send the run task; ``EnqueueFailed`` (execution marked failed) when
    the broker does not take it."""
    celery = current_app.extensions["celery"]
    try:
        celery.send_task(RUN_TASK, args=(str(execution_id),), retry=True, retry_policy=PUBLISH_RETRY_POLICY)
    except (OperationalError, OSError) as exc:
        message = f"the broker did not accept the task: {exc}"
        execution = db.session.get(Execution, execution_id)
        if execution is not None and execution.status == "queued":
            failure = Failure(ENQUEUE_FAILED, message, exception=type(exc).__name__)
            ErrorHandler().fail_execution(execution, failure, current_notifier())
        raise EnqueueFailed(message, execution_id) from exc
