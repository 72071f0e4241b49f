"""A runner's logger writes exactly the records the original ExecutionLogger
helpers write, with the execution's trace and the step filled in (checked on
the rows the worker stored)."""

from __future__ import annotations

import uuid

import pytest

from webapp.execlog import LogCategory
from webapp.workflow import StepLogger

pytestmark = pytest.mark.usefixtures("celery_worker")

# (ExecutionLogger call, the same through a StepLogger)
PAIRS = [
    (lambda log, t: log.log_workflow_start(t, None, "flow on", "r-1", {"a": 1}),
     lambda step: step.log_workflow_start("flow on", "r-1", {"a": 1})),
    (lambda log, t: log.log_workflow_complete(t, None, "flow done", 12.5, "r-1", {"a": 2}),
     lambda step: step.log_workflow_complete("flow done", 12.5, "r-1", {"a": 2})),
    (lambda log, t: log.log_agent_start(t, "agent-x", "thinking", "c-1", {"b": 1}),
     lambda step: step.log_agent_start("agent-x", "thinking", "c-1", {"b": 1})),
    (lambda log, t: log.log_agent_complete(t, "agent-x", "thought", 3.0, "c-1", {"b": 2}),
     lambda step: step.log_agent_complete("agent-x", "thought", 3.0, "c-1", {"b": 2})),
    (lambda log, t: log.log_agent_error(t, "agent-x", "oops", "bad things", "c-1", {"b": 3}),
     lambda step: step.log_agent_error("agent-x", "oops", "bad things", "c-1", {"b": 3})),
    (lambda log, t: log.log_tool_call(t, "agent-x", "search", "searched", 1.5, {"hits": 3}),
     lambda step: step.log_tool_call("agent-x", "search", "searched", 1.5, {"hits": 3})),
    (lambda log, t: log.log_retry_start(t, "again", "r-1", {"n": 2}),
     lambda step: step.log_retry_start("again", "r-1", {"n": 2})),
    (lambda log, t: log.log_retry_complete(t, "done again", 9.0, "r-1", {"n": 2}),
     lambda step: step.log_retry_complete("done again", 9.0, "r-1", {"n": 2})),
    (lambda log, t: log.warning(t, LogCategory.DATABASE, "slow", agent_name="db", details={"ms": 900}),
     lambda step: step.warning(LogCategory.DATABASE, "slow", agent_name="db", details={"ms": 900})),
    (lambda log, t: log.debug(t, "api", "called"), lambda step: step.debug("api", "called")),
]


def timed(logger, fail: bool):
    with logger as timer:
        timer.set_details({"items": 4})
        if fail:
            raise ValueError("no luck")


def test_a_step_logger_writes_the_original_records_with_the_trace_and_the_step(app, log_table):
    logger = app.extensions["execlog"]
    plain, bound = f"plain-{uuid.uuid4()}", str(uuid.uuid4())
    step_logger = StepLogger(bound, "the-step", logger)
    for original, through_step in PAIRS:
        original(logger, plain)
        through_step(step_logger)
    for fail in (False, True):
        with pytest.raises(ValueError) if fail else _nothing():
            timed(logger.timed_operation(plain, "tool", "lookup", "agent-x", "c-1", "r-1"), fail)
        with pytest.raises(ValueError) if fail else _nothing():
            timed(step_logger.timed_operation("tool", "lookup", "agent-x", "c-1", "r-1"), fail)
    assert logger.flush(timeout=30)

    expected = len(PAIRS) + 4
    plain_rows = log_table.wait_for_count(plain, expected)
    bound_rows = log_table.wait_for_count(bound, expected)
    assert {row["step"] for row in bound_rows} == {"the-step"}
    assert {row["step"] for row in plain_rows} == {None}
    varying = ("id", "trace_id", "step", "created_at", "duration_ms")
    assert [_without(row, varying) for row in bound_rows] == [_without(row, varying) for row in plain_rows]
    timed_rows = [row for row in bound_rows if row["message"].startswith("lookup ")]
    assert [row["message"] for row in timed_rows] == [
        "lookup started", "lookup completed", "lookup started", "lookup failed: no luck"]
    assert timed_rows[3]["details"] == {"error": "no luck", "items": 4}
    assert timed_rows[1]["duration_ms"] >= 0 and timed_rows[0]["duration_ms"] is None


def _without(row, keys):
    return {key: value for key, value in row.items() if key not in keys}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
