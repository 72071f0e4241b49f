"""Starting executions: what the CLI and the HTTP API call.

``start_execution`` checks the workflow and the input before anything is
stored (bad requests fail with a precise exception and leave no row), inserts
the execution and its steps as ``queued`` / ``pending`` with an
``execution_queued`` event, commits, and only then enqueues the run task, so
that the worker always finds the row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Execution, ExecutionStep
from ..storable import json_problem, unstorable
from .definition import Workflow
from .enqueue import enqueue
from .errors import IdempotencyConflict, InvalidInput
from .current import current_notifier, current_registry
from .registry import Registry

#: ``executions.idempotency_key`` is 255 characters.
MAX_IDEMPOTENCY_KEY = 255


def start_execution(workflow: str, input: Any, idempotency_key: str | None = None) -> Execution:
    """Queue a run of ``workflow`` on ``input``; the new (or, for a known
    idempotency key, the existing) execution.

    Raises ``UnknownWorkflow``, ``WorkflowUnavailable`` (broken or disabled),
    ``InvalidInput`` (with the field errors), ``IdempotencyConflict`` (the key
    was used for another request) or ``EnqueueFailed`` (the broker refused the
    task; the execution is then stored as failed and can be resumed).
    """
    registry = current_registry()
    definition = registry.workflow(workflow)
    payload = check_input(registry, definition, input)
    key = _check_key(idempotency_key)
    if key is not None:
        existing = _by_key(key)
        if existing is not None:
            return _same_request(existing, workflow, payload)
    execution = Execution(id=uuid.uuid4(), workflow=workflow, status="queued", input=payload,
                          attempts=0, idempotency_key=key)
    db.session.add(execution)
    db.session.add_all(
        ExecutionStep(execution_id=execution.id, position=position, name=step.name, runner=step.runner,
                      status="pending", attempts=0)
        for position, step in enumerate(definition.steps)
    )
    try:
        current_notifier().publish(execution.id, "execution_queued",
                                   {"workflow": workflow, "steps": [step.name for step in definition.steps]})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = _by_key(key) if key is not None else None
        if existing is None:
            raise
        return _same_request(existing, workflow, payload)  # a concurrent request with the same key won
    enqueue(execution.id)
    return execution


def check_input(registry: Registry, workflow: Workflow, data: Any) -> dict[str, Any]:
    """The input as it will be stored; ``InvalidInput`` unless it is a JSON
    object PostgreSQL can store (no NUL, no lone surrogate, at most
    ``MAX_JSON_DEPTH`` levels deep) that every step's input schema accepts."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"the input must be a JSON object, got {type(data).__name__}")
    payload = dict(data)
    problem = json_problem(payload)
    if problem is not None:
        where, what = problem
        raise InvalidInput(f"the input cannot be stored: {where} {what}", fields={where: [what]})
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the input is not JSON: {exc}") from None
    fields: dict[str, list[Any]] = {}
    for step in workflow.steps:
        try:
            registry.runner(step.runner).load_input(payload)
        except InvalidInput as exc:
            for field, messages in (exc.fields or {"_schema": [exc.message]}).items():
                known = fields.setdefault(field, [])
                known.extend(m for m in _as_list(messages) if m not in known)
    if fields:
        raise InvalidInput(f"the input does not fit workflow {workflow.name!r}", fields=fields)
    return payload


def _as_list(messages: Any) -> list[Any]:
    return list(messages) if isinstance(messages, list) else [messages]


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    what = unstorable(key)
    if what:
        raise InvalidInput(f"the idempotency key holds {what}")
    return key


def _by_key(key: str) -> Execution | None:
    return db.session.scalar(sa.select(Execution).where(Execution.idempotency_key == key))


def _same_request(existing: Execution, workflow: str, payload: dict[str, Any]) -> Execution:
    if existing.workflow != workflow or existing.input != payload:
        raise IdempotencyConflict(
            f"the idempotency key {existing.idempotency_key!r} was used for another request "
            f"(execution {existing.id}, workflow {existing.workflow!r})"
        )
    return existing
