"""Every method of the original ExecutionLogger API, checked on the rows the
real worker stored (so the test covers the whole path, not just the call)."""

from __future__ import annotations

import pytest

from webapp.execlog import ExecutionLogger, LogCategory, LogLevel, execution_logger

pytestmark = pytest.mark.usefixtures("celery_worker")


@pytest.fixture
def logger(app) -> ExecutionLogger:
    return app.extensions["execlog"]


def stored(logger, log_table, trace_id, count):
    assert logger.flush(timeout=30) is True
    rows = log_table.wait_for_count(trace_id, count)
    assert len(rows) == count
    return rows


def fields(row, *names):
    return {name: row[name] for name in names}


def test_log_returns_the_buffered_record_with_its_id(logger, log_table, trace_id):
    record = logger.log(trace_id, LogLevel.WARNING, LogCategory.DATABASE, "slow query",
                        step="fetch", agent_name="db", roadmap_id="r1", concept_id="c1",
                        details={"ms": 900}, duration_ms=900)
    (row,) = stored(logger, log_table, trace_id, 1)
    assert str(row["id"]) == record.id
    assert row["created_at"] == record.created_at
    assert fields(row, "trace_id", "level", "category", "message", "step", "agent_name",
                  "roadmap_id", "concept_id", "details", "duration_ms") == {
        "trace_id": trace_id, "level": "warning", "category": "database", "message": "slow query",
        "step": "fetch", "agent_name": "db", "roadmap_id": "r1", "concept_id": "c1",
        "details": {"ms": 900}, "duration_ms": 900.0,
    }


def test_level_shortcuts(logger, log_table, trace_id):
    logger.debug(trace_id, LogCategory.TOOL, "d")
    logger.info(trace_id, "agent", "i", step="s1")
    logger.warning(trace_id, "API", "w")
    logger.error(task_id=trace_id, category=LogCategory.RETRY, message="e", details={"x": 1})
    rows = stored(logger, log_table, trace_id, 4)
    assert [(r["level"], r["category"], r["message"]) for r in rows] == [
        ("debug", "tool", "d"), ("info", "agent", "i"), ("warning", "api", "w"), ("error", "retry", "e"),
    ]
    assert rows[1]["step"] == "s1" and rows[3]["details"] == {"x": 1}


def test_workflow_agent_tool_and_retry_helpers(logger, log_table, trace_id):
    logger.log_workflow_start(trace_id, "plan", "workflow started", roadmap_id="r", details={"a": 1})
    logger.log_agent_start(trace_id, "intent", "agent started", concept_id="c")
    logger.log_tool_call(trace_id, "intent", "catalog.search", "tool called", duration_ms=3.5,
                         details={"query": "python"})
    logger.log_agent_complete(trace_id, "intent", "agent done", duration_ms=12, concept_id="c",
                              details={"topic": "python"})
    logger.log_agent_error(trace_id, "curriculum", "agent failed", "boom", concept_id="c2",
                           details={"attempt": 2})
    logger.log_retry_start(trace_id, "retrying", roadmap_id="r", details={"from": "curriculum"})
    logger.log_retry_complete(trace_id, "retried", duration_ms=40, roadmap_id="r")
    logger.log_workflow_complete(trace_id, "plan", "workflow done", duration_ms=99, roadmap_id="r",
                                 details={"ok": True})
    rows = stored(logger, log_table, trace_id, 8)
    got = [fields(r, "level", "category", "message", "step", "agent_name", "roadmap_id",
                  "concept_id", "details", "duration_ms") for r in rows]
    assert got == [
        dict(level="info", category="workflow", message="workflow started", step="plan", agent_name=None,
             roadmap_id="r", concept_id=None, details={"a": 1}, duration_ms=None),
        dict(level="info", category="agent", message="agent started", step=None, agent_name="intent",
             roadmap_id=None, concept_id="c", details=None, duration_ms=None),
        dict(level="debug", category="tool", message="tool called", step=None, agent_name="intent",
             roadmap_id=None, concept_id=None, details={"tool_name": "catalog.search", "query": "python"},
             duration_ms=3.5),
        dict(level="info", category="agent", message="agent done", step=None, agent_name="intent",
             roadmap_id=None, concept_id="c", details={"topic": "python"}, duration_ms=12.0),
        dict(level="error", category="agent", message="agent failed", step=None, agent_name="curriculum",
             roadmap_id=None, concept_id="c2", details={"error": "boom", "attempt": 2}, duration_ms=None),
        dict(level="info", category="retry", message="retrying", step=None, agent_name=None,
             roadmap_id="r", concept_id=None, details={"from": "curriculum"}, duration_ms=None),
        dict(level="info", category="retry", message="retried", step=None, agent_name=None,
             roadmap_id="r", concept_id=None, details=None, duration_ms=40.0),
        dict(level="info", category="workflow", message="workflow done", step="plan", agent_name=None,
             roadmap_id="r", concept_id=None, details={"ok": True}, duration_ms=99.0),
    ]


def test_helpers_take_every_argument_by_keyword_and_task_id_for_trace_id(logger, log_table, trace_id):
    logger.log_agent_error(task_id=trace_id, agent_name="a", message="m", error="e", concept_id="c",
                           details=None)
    logger.log_tool_call(task_id=trace_id, agent_name="a", tool_name="t", message="m2")
    logger.log_workflow_complete(task_id=trace_id, step="s", message="m3")
    rows = stored(logger, log_table, trace_id, 3)
    assert rows[0]["details"] == {"error": "e"}
    assert rows[1]["details"] == {"tool_name": "t"}
    assert rows[2]["step"] == "s"


def test_timed_operation_logs_start_and_completion_with_duration_and_details(logger, log_table, trace_id):
    with logger.timed_operation(trace_id, LogCategory.AGENT, "design curriculum", agent_name="curriculum",
                                concept_id="c", roadmap_id="r") as timer:
        timer.set_details({"stages": 3})
    started, completed = stored(logger, log_table, trace_id, 2)
    assert (started["message"], started["level"], started["duration_ms"]) == (
        "design curriculum started", "info", None)
    assert (completed["message"], completed["level"]) == ("design curriculum completed", "info")
    assert completed["duration_ms"] >= 0
    assert completed["details"] == {"stages": 3}
    for row in (started, completed):
        assert fields(row, "category", "agent_name", "concept_id", "roadmap_id") == {
            "category": "agent", "agent_name": "curriculum", "concept_id": "c", "roadmap_id": "r"}


def test_timed_operation_logs_the_failure_and_reraises(logger, log_table, trace_id):
    long_error = "x" * 150
    with pytest.raises(RuntimeError, match="xxx"):
        with logger.timed_operation(task_id=trace_id, category="tool", operation_name="fetch") as timer:
            timer.set_details({"url": "catalog"})
            raise RuntimeError(long_error)
    started, failed = stored(logger, log_table, trace_id, 2)
    assert started["message"] == "fetch started"
    assert failed["level"] == "error"
    assert failed["message"] == f"fetch failed: {'x' * 100}"
    assert failed["details"] == {"error": long_error, "url": "catalog"}
    assert failed["duration_ms"] >= 0


def test_the_module_level_logger_is_the_current_apps(app, logger, log_table, trace_id):
    assert execution_logger.info(trace_id, "api", "via the proxy")
    assert execution_logger.stats() == logger.stats()
    stored(logger, log_table, trace_id, 1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda lg: lg.log("t", "verbose", "agent", "m"), "level must be one of"),
        (lambda lg: lg.log("t", "info", "misc", "m"), "category must be one of"),
        (lambda lg: lg.info(None, "agent", "m"), "trace_id is required"),
        (lambda lg: lg.info("t", "agent", None), "message is required"),
        (lambda lg: lg.info("t" * 10_000, "agent", "m"), "trace_id is 10000 characters long"),
        (lambda lg: lg.info("t", "agent", "m", step="s" * 256), "step is 256 characters long"),
        (lambda lg: lg.info("t", "agent", "m", duration_ms="fast"), "duration_ms must be a number"),
        (lambda lg: lg.info("a", "agent", "m", task_id="b"), "pass trace_id or task_id, not both"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_field(logger, call, message):
    before = logger.stats()["buffered"]
    with pytest.raises(ValueError, match=message):
        call(logger)
    assert logger.stats()["buffered"] == before
