"""webapp-synthetic: runners for tests and benchmarks.

* ``emit`` logs ``records`` records of ``size`` characters, at ``rate``
  records a second (0: as fast as it can); at most ``MAX_RECORDS`` records,
  ``MAX_CHARACTERS`` characters and ``MAX_SECONDS`` seconds a run.
* ``flaky`` fails its first ``fail_times`` tries (or every try, with
  ``always``) with a ``failure`` of the given kind: ``transient`` (retried by
  policy), ``invalid_input`` or ``bug`` (not retried).

Workflows: ``synthetic-emit`` (emit) and ``flaky`` (emit as ``before``,
flaky, emit as ``after``; flaky tried up to 3 times, 50 ms backoff).
"""

from __future__ import annotations

import time
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from webapp.execlog import LogCategory
from webapp.workflow import InvalidInput, RetryPolicy, Runner, Step, StepContext, TransientError, Workflow

FAILURES = ("transient", "invalid_input", "bug")


#: What one run may ask for: one request could otherwise hold a worker for
#: years (``rate`` near 0) or queue gigabytes (a million records of 32 KiB).
MAX_RECORDS = 100_000
MAX_CHARACTERS = 16 * 1024 * 1024
MAX_SECONDS = 600.0
MIN_RATE = 0.1
MAX_FAIL_TIMES = 10


class EmitInput(Schema):
    class Meta:
        unknown = EXCLUDE

    records = fields.Integer(strict=True, load_default=10, validate=validate.Range(min=0, max=MAX_RECORDS))
    size = fields.Integer(strict=True, load_default=64, validate=validate.Range(min=16, max=32_768))
    rate = fields.Float(load_default=0.0, allow_nan=False, validate=validate.Range(min=0, max=1_000_000))

    @validates_schema
    def _bounded(self, data: dict[str, Any], **_: Any) -> None:
        records, size, rate = data.get("records", 10), data.get("size", 64), data.get("rate", 0.0)
        if records * size > MAX_CHARACTERS:
            raise ValidationError(f"records x size may be {MAX_CHARACTERS} characters at most, "
                                  f"got {records * size}", "records")
        if 0 < rate < MIN_RATE:
            raise ValidationError(f"Must be 0 (as fast as it can) or at least {MIN_RATE:g} records a second.",
                                  "rate")
        if rate and records / rate > MAX_SECONDS:
            raise ValidationError(f"records / rate may be {MAX_SECONDS:g} s at most, "
                                  f"got {records / rate:g} s", "rate")


class Emit(Runner):
    name = "emit"
    input_schema = EmitInput

    def run(self, context: StepContext) -> dict[str, Any]:
        count, size, rate = (context.workflow_input[key] for key in ("records", "size", "rate"))
        started = time.perf_counter()
        for seq in range(count):
            if rate:
                ahead = started + seq / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            prefix = f"record {seq} of {count} "
            context.logger.info(LogCategory.AGENT, prefix.ljust(size, "x"), agent_name="emitter",
                                details={"seq": seq})
        return {"records": count, "size": size, "duration_ms": (time.perf_counter() - started) * 1000.0}


class FlakyInput(Schema):
    class Meta:
        unknown = EXCLUDE

    fail_times = fields.Integer(strict=True, load_default=0,
                                validate=validate.Range(min=0, max=MAX_FAIL_TIMES))
    failure = fields.String(load_default="transient", validate=validate.OneOf(FAILURES))
    always = fields.Boolean(load_default=False)


class Flaky(Runner):
    name = "flaky"
    input_schema = FlakyInput

    def run(self, context: StepContext) -> dict[str, Any]:
        settings = context.workflow_input
        if settings["always"] or context.attempt <= settings["fail_times"]:
            message = f"failing try {context.attempt} on purpose ({settings['failure']})"
            context.logger.log_agent_error("flaky", message, error=settings["failure"])
            if settings["failure"] == "transient":
                raise TransientError(message)
            if settings["failure"] == "invalid_input":
                raise InvalidInput(message)
            raise RuntimeError(message)
        return {"attempt": context.attempt, "failed_before": context.attempt - 1}


SYNTHETIC_EMIT = Workflow("synthetic-emit", ("emit",), description="Log records at a given size and rate")

FLAKY = Workflow(
    "flaky",
    (
        Step("emit", name="before"),
        Step("flaky", retry=RetryPolicy(max_attempts=3, backoff_base=0.05, backoff_cap=0.2)),
        Step("emit", name="after"),
    ),
    description="A step that fails on demand between two that do not",
)
