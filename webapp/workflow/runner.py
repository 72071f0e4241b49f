"""The runner contract: what a plugin implements, and what it is given.

    from marshmallow import Schema, fields
    from webapp.workflow import InvalidInput, Runner, StepContext

    class Greet(Runner):
        name = "greet"

        class input_schema(Schema):
            who = fields.String(required=True)

        def run(self, context: StepContext) -> dict:
            context.logger.log_agent_start("greeter", "greeting")
            return {"greeting": f"hello {context.workflow_input['who']}"}

A runner holds only its own logic: the engine (WorkflowBrain) marks the
step's status, logs its start and end, retries it and records its failures.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError

from .errors import ContractViolation, InvalidInput
from .steplog import StepLogger


@dataclass(frozen=True)
class StepContext:
    """What a runner's ``run`` is given.

    ``workflow_input`` is the execution's input as the runner's
    ``input_schema`` loads it (defaults filled in), or the input itself when
    the runner declares no schema. ``outputs`` maps the names of the earlier
    steps to their outputs. ``attempt`` counts this step's tries, 1 first,
    across resumes. ``logger`` logs with the trace and the step filled in.
    """

    execution_id: str
    workflow: str
    step: str
    attempt: int
    workflow_input: Mapping[str, Any]
    outputs: Mapping[str, Any]
    logger: StepLogger

    @property
    def trace_id(self) -> str:
        """The logs' trace id: the execution id."""
        return self.execution_id


class Runner(abc.ABC):
    """Base class of runner plugins.

    Subclasses set ``name`` (the name of their entry point in the
    ``webapp.runners`` group), may set ``input_schema`` (a marshmallow Schema
    class the workflow input must satisfy: checked when an execution is
    started, and again before each run) and ``output_schema`` (what ``run``
    must return), and implement ``run``. A new instance runs each attempt.

    In ``run``, raise :class:`~webapp.workflow.InvalidInput` for input that
    cannot be worked with and :class:`~webapp.workflow.TransientError` for a
    failure worth retrying; anything else is recorded as a bug of the runner.
    """

    name: ClassVar[str]
    input_schema: ClassVar[type[Schema] | None] = None
    output_schema: ClassVar[type[Schema] | None] = None

    @abc.abstractmethod
    def run(self, context: StepContext) -> dict[str, Any]:
        """Do the step's work; return its output, a JSON object."""

    @classmethod
    def load_input(cls, workflow_input: Mapping[str, Any]) -> dict[str, Any]:
        """The workflow input as this runner sees it; ``InvalidInput`` with
        the field errors when it does not match ``input_schema``."""
        if cls.input_schema is None:
            return dict(workflow_input)
        try:
            return dict(cls.input_schema().load(workflow_input))
        except ValidationError as exc:
            raise InvalidInput(
                f"the input does not fit runner {cls.name!r}", fields=_messages(exc)
            ) from None

    @classmethod
    def check_output(cls, output: Any) -> dict[str, Any]:
        """The output as it is stored: ``ContractViolation`` unless it is a
        JSON object that matches ``output_schema``. It goes through JSON
        once, so that the later steps of this run see exactly what they
        would see reloaded from the database after a resume."""
        if not isinstance(output, dict):
            raise ContractViolation(
                f"runner {cls.name!r} returned {type(output).__name__}, not a dict"
            )
        try:
            stored: dict[str, Any] = json.loads(json.dumps(output, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ContractViolation(f"runner {cls.name!r} returned output that is not JSON: {exc}") from None
        if cls.output_schema is not None:
            errors = cls.output_schema().validate(stored)
            if errors:
                raise ContractViolation(
                    f"runner {cls.name!r} returned output that does not match its output_schema: {errors}"
                )
        return stored


def _messages(exc: ValidationError) -> dict[str, Any]:
    messages = exc.messages
    return dict(messages) if isinstance(messages, Mapping) else {"_schema": messages}
