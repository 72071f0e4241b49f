"""The brain in-process, on a broker no worker reads: what happens when the
workflow an execution was created with is gone or has changed, when the
engine itself fails, when a runner breaks its contract, and when the broker
refuses the task."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from webapp.config import celery_config
from webapp.extensions import db
from webapp.models import Execution
from webapp.workflow import EnqueueFailed, resume_execution, start_execution
from webapp.workflow.brain import NOT_CLAIMED, WorkflowBrain
from webapp.workflow.registry import RUNNERS_GROUP, discover

from ..support.processes import free_port
from . import sample_plugins
from .conftest import DatabaseWentAway, commit_refused, queued_messages, start

SAMPLES = "tests.workflow.sample_plugins"

PAIR = {"pair": ["emit", {"runner": "emit", "name": "second"}]}


def run_in(app, execution_id) -> str:
    with app.app_context():
        return WorkflowBrain.for_current_app().run(execution_id)


@pytest.fixture
def spare_app(app_factory, spare_broker, tmp_path):
    built = []

    def factory(**overrides):
        app = app_factory(CELERY=celery_config(spare_broker, tmp_path), **overrides)
        built.append(app)
        return app

    yield factory
    for app in built:
        app.extensions["execlog"].close(timeout=10)


@pytest.mark.parametrize(
    "later, message",
    [
        ({"pair": ["emit"]}, "workflow 'pair' changed since the execution was created: its steps are emit, "
                             "the execution's are emit -> second (emit)"),
        ({}, "no workflow named 'pair'; available: "),
        ({"pair": ["teleport"]},
         "workflow 'pair' is broken: step 'teleport': runner 'teleport' is not installed"),
    ],
)
def test_an_execution_whose_workflow_is_gone_or_changed_fails_and_says_why(spare_app, tables, later, message):
    execution_id = start(spare_app(WORKFLOWS=PAIR), "pair", {"records": 1})
    assert run_in(spare_app(WORKFLOWS=later), execution_id) == "failed"
    error = tables.get(execution_id)["error"]
    assert error["kind"] == "workflow_unavailable"
    assert error["message"].startswith(message), error["message"]
    assert [s["status"] for s in tables.steps(execution_id).values()] == ["skipped", "skipped"]


@pytest.mark.parametrize(
    "runner, message",
    [
        ("not-json", "ContractViolation: runner 'not-json' returned output that is not JSON: "
                     "Object of type object is not JSON serializable"),
        ("not-a-dict", "ContractViolation: runner 'not-a-dict' returned list, not a dict"),
        ("counted", "ContractViolation: runner 'counted' returned output that does not match its "
                    "output_schema: {'count': ['Not a valid integer.']}"),
    ],
)
def test_a_runner_that_breaks_its_output_contract_is_a_runner_bug(spare_app, tables, runner, message):
    app = spare_app()
    attr = next(a for a in ("NotJson", "NotADict", "Counted") if getattr(sample_plugins, a).name == runner)
    entry_point = EntryPoint(runner, f"{SAMPLES}:{attr}", RUNNERS_GROUP)
    app.extensions["workflow_registry"] = discover(
        entry_points=lambda group: [entry_point] if group == RUNNERS_GROUP else [],
        config_workflows={"contract": [runner]},
    )
    execution_id = start(app, "contract", {})
    assert run_in(app, execution_id) == "failed"
    error = tables.get(execution_id)["error"]
    assert (error["kind"], error["exception"]) == ("runner_bug", "ContractViolation")
    assert error["message"] == message


def test_later_steps_see_outputs_as_stored(spare_app, tables):
    app = spare_app()
    points = [EntryPoint("tuples", f"{SAMPLES}:Tuples", RUNNERS_GROUP),
              EntryPoint("peek", f"{SAMPLES}:Peek", RUNNERS_GROUP)]
    app.extensions["workflow_registry"] = discover(
        entry_points=lambda group: points if group == RUNNERS_GROUP else [],
        config_workflows={"peeking": ["tuples", "peek"]},
    )
    execution_id = start(app, "peeking", {})
    assert run_in(app, execution_id) == "succeeded"
    assert tables.steps(execution_id)["tuples"]["output"] == {"pair": [1, 2], "3": "three"}
    # In this run, as after a resume: a list and text keys, not the tuple and int the runner returned.
    assert tables.get(execution_id)["result"] == {"pair": "list", "keys": ["'3'", "'pair'"]}


def test_resuming_puts_the_failed_and_skipped_steps_back_to_pending(spare_app, tables):
    app = spare_app()
    execution_id = start(app, "flaky", {"fail_times": 1, "failure": "bug"})
    assert run_in(app, execution_id) == "failed"
    with app.app_context():
        resume_execution(execution_id)
    assert (tables.get(execution_id)["status"], tables.get(execution_id)["error"]) == ("queued", None)
    steps = tables.steps(execution_id)
    assert [(s["status"], s["attempts"], s["error"], s["finished_at"]) for s in steps.values()] == [
        ("succeeded", 1, None, steps["before"]["finished_at"]),
        ("pending", 1, None, None),
        ("pending", 0, None, None),
    ]
    assert run_in(app, execution_id) == "succeeded"


def test_when_the_engine_fails_the_execution_is_marked_failed_and_can_be_resumed(spare_app, tables):
    app = spare_app()
    execution_id = start(app, "synthetic-emit", {"records": 1})
    with app.app_context():
        brain = WorkflowBrain.for_current_app()
        execution = db.session.get(Execution, execution_id)
        execution.status = "running"
        db.session.commit()
        brain.abandon(execution.id, ConnectionResetError("server closed the connection"))
    error = tables.get(execution_id)["error"]
    assert (error["kind"], error["message"]) == (
        "internal_error", "ConnectionResetError: server closed the connection")
    assert tables.get(execution_id)["status"] == "failed"


def test_a_run_request_for_an_execution_that_is_not_queued_is_ignored(spare_app, tables):
    app = spare_app()
    execution_id = start(app, "synthetic-emit", {"records": 1})
    assert run_in(app, execution_id) == "succeeded"
    assert run_in(app, execution_id) == NOT_CLAIMED
    assert tables.get(execution_id)["attempts"] == 1


def test_when_the_broker_refuses_the_task_the_execution_fails_and_resumes_later(
    app, app_factory, tables, tmp_path, celery_worker
):
    down = app_factory(CELERY=celery_config(f"redis://127.0.0.1:{free_port()}/0", tmp_path))
    with down.app_context(), pytest.raises(EnqueueFailed, match="the broker did not accept") as refused:
        start_execution("synthetic-emit", {"records": 1})
    down.extensions["execlog"].close(timeout=10)
    execution_id = str(refused.value.execution_id)
    execution = tables.get(execution_id)
    assert (execution["status"], execution["error"]["kind"]) == ("failed", "enqueue_failed")
    assert [e["type"] for e in tables.events(execution_id)] == ["execution_queued", "execution_failed"]

    with app.app_context():  # the broker is back
        resume_execution(execution_id)
    assert tables.wait_finished(execution_id)["status"] == "succeeded"


@pytest.mark.parametrize("workflow, data, outcome", [
    ("pair", {"records": 2}, "succeeded"),
    ("flaky", {"always": True, "failure": "invalid_input"}, "failed"),
])
def test_an_execution_is_never_over_without_its_log_count(spare_app, db_engine, workflow, data, outcome):
    """The count of what the run logged is committed with the final status:
    in between, the verdict would call a healthy run one that never
    reported (while the run flushed its logger, up to seconds)."""
    import sqlalchemy as sa

    app = spare_app(WORKFLOWS=PAIR)
    execution_id = start(app, workflow, data)
    over_without_count = []

    def check(session):
        with db_engine.connect() as connection:
            status = connection.execute(sa.text("SELECT status FROM executions WHERE id = :i"),
                                        {"i": execution_id}).scalar()
            counts = connection.execute(sa.text("SELECT count(*) FROM execution_log_counts "
                                                "WHERE execution_id = :i"), {"i": execution_id}).scalar()
        if status in ("succeeded", "failed") and not counts:
            over_without_count.append(status)

    with app.app_context():
        sa.event.listen(db.session, "after_commit", check)
        try:
            assert WorkflowBrain.for_current_app().run(execution_id) == outcome
        finally:
            sa.event.remove(db.session, "after_commit", check)
    assert over_without_count == []


@pytest.mark.parametrize("workflow, data, event, message", [
    ("pair", {"records": 1}, "step_started", "step emit started"),
    ("pair", {"records": 1}, "step_succeeded", "step emit succeeded"),
    ("pair", {"records": 1}, "execution_succeeded", "workflow pair succeeded"),
    ("flaky", {"always": True, "failure": "invalid_input"}, "step_failed", "step flaky failed"),
    ("flaky", {"always": True, "failure": "invalid_input"}, "execution_failed", "workflow flaky failed"),
])
def test_the_log_never_says_a_state_changed_when_its_commit_did_not_happen(
    spare_app, spare_broker, tables, workflow, data, event, message
):
    """The commit that records ``event`` fails, as when the worker dies in
    it: the execution's log has the records of the changes before it, and
    none that says this change happened (otherwise a resumed execution's log
    says "succeeded" twice)."""
    app = spare_app(WORKFLOWS=PAIR)
    execution_id = start(app, workflow, data)
    with app.app_context(), commit_refused(event), pytest.raises(DatabaseWentAway):
        WorkflowBrain.for_current_app().run(execution_id)
    assert event not in [e["type"] for e in tables.events(execution_id)]
    logged = queued_messages(app, spare_broker, execution_id)
    assert f"workflow {workflow} started" in logged
    assert not [m for m in logged if m.startswith(message)], logged
