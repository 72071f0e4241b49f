"""``flask executions start --follow`` and ``flask executions logs``."""

from __future__ import annotations

import re
import uuid

import pytest

from .test_events import FAST

pytestmark = pytest.mark.usefixtures("celery_worker")

LINE = re.compile(r"\S+  (EVENT  |INFO   |DEBUG  |WARNING|ERROR  ) .+")


def flask(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_start_follow_prints_events_and_logs_live_until_the_end(app_factory):
    app = app_factory(**FAST)
    result = flask(app, "executions", "start", "synthetic-emit", "--input", '{"records": 3}', "--follow")

    assert result.exit_code == 0, result.output
    first, *lines = result.output.splitlines()
    execution_id = first.split()[0]
    assert all(LINE.fullmatch(line) for line in lines), lines
    assert "EVENT   execution_queued" in lines[0]
    assert "EVENT   execution_succeeded" in lines[-1]
    assert any(line.endswith("INFO    workflow  workflow synthetic-emit succeeded") for line in lines)
    assert any("[emit]" in line for line in lines)

    logs = flask(app, "executions", "logs", execution_id)
    assert logs.exit_code == 0
    assert [line for line in lines if "EVENT" not in line] == logs.output.splitlines()


def test_start_follow_fails_when_the_execution_fails(app_factory):
    app = app_factory(**FAST)
    result = flask(app, "executions", "start", "flaky", "--input",
                   '{"fail_times": 1, "failure": "invalid_input"}', "--follow")
    assert result.exit_code == 1
    assert "EVENT   step_failed" in result.output
    failed = r"Error: execution \S+ failed: failing try 1 on purpose \(invalid_input\)"
    assert re.search(failed, result.output)


def test_logs_filters_by_level_and_refuses_an_unknown_execution(app, rows, execution_id):
    rows.log(execution_id, "fine", level="info")
    rows.log(execution_id, "broken", level="error", step="intent", agent_name="analyst")
    errors = flask(app, "executions", "logs", execution_id, "--level", "error")
    assert errors.exit_code == 0
    assert errors.output.endswith("  ERROR   agent     [intent] analyst: broken\n")
    assert len(errors.output.splitlines()) == 1
    missing = uuid.uuid4()
    unknown = flask(app, "executions", "logs", str(missing))
    assert unknown.exit_code == 1 and f"Error: no execution {missing}" in unknown.output
