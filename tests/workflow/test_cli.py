"""``flask executions start`` and ``flask executions resume``."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.usefixtures("celery_worker")

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def flask(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_start_queues_an_execution_and_prints_its_id(app, tables):
    result = flask(app, "executions", "start", "roadmap", "--input", '{"goal": "learn SQL, 4 hours a week"}')
    assert result.exit_code == 0, result.output
    match = re.fullmatch(rf"({UUID}) (queued|running|succeeded)\n", result.output)
    assert match, result.output
    execution = tables.wait_finished(match[1])
    assert (execution["status"], execution["result"]["topic"]) == ("succeeded", "sql")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["roadmap", "--input", "{goal}"], 2, "Invalid value for --input: not JSON: Expecting property name"),
        (["roadmap", "--input", "{}"], 1,
         "Error: the input does not fit workflow 'roadmap': goal: Missing data for required field."),
        (["nope"], 1, "Error: no workflow named 'nope'; available: "),
    ],
)
def test_start_refuses_bad_requests_with_the_reason(app, args, code, message):
    result = flask(app, "executions", "start", *args)
    assert result.exit_code == code
    assert message in result.output


def test_resume_requeues_a_failed_execution_and_refuses_others(app, tables):
    failing = '{"fail_times": 1, "failure": "invalid_input"}'
    started = flask(app, "executions", "start", "flaky", "--input", failing)
    execution_id = started.output.split()[0]
    assert tables.wait_finished(execution_id)["error"]["kind"] == "invalid_input"

    result = flask(app, "executions", "resume", execution_id)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"{execution_id} (queued|running|succeeded)\n", result.output)
    assert tables.wait_finished(execution_id)["status"] == "succeeded"

    again = flask(app, "executions", "resume", execution_id)
    assert again.exit_code == 1
    assert f"Error: execution {execution_id} is succeeded; only a failed execution can be resumed" \
        in again.output
