"""The heartbeat of a running execution and the sweep that fails executions
whose worker stopped stamping them, in-process on a broker no worker reads.
(A real worker killed mid-execution: tests/faults/test_workflow_faults.py.)"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from webapp.config import celery_config
import sqlalchemy as sa

from webapp.workflow import resume_execution
from webapp.workflow.brain import LOST, WorkflowBrain
from webapp.workflow.settings import WorkflowSettings
from webapp.workflow.heartbeat import Heartbeat

from ..support.waiting import wait_for
from .conftest import DatabaseWentAway, commit_refused, queued_messages, start, sweep

FAST = {"WORKFLOW_HEARTBEAT_SECONDS": 0.05, "WORKFLOW_STALE_SECONDS": 1.0}


@pytest.fixture
def spare_app(app_factory, spare_broker, tmp_path):
    return app_factory(CELERY=celery_config(spare_broker, tmp_path), **FAST)


def set_columns(engine, table: str, where: str, **values) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {table} SET {assignments} WHERE {where}"), values)


def as_running(engine, execution_id: str, seconds_ago: float, step: str = "before") -> None:
    """The state a worker leaves when it dies while running ``step``."""
    stamp = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    set_columns(engine, "executions", f"id = '{execution_id}'", status="running", attempts=1,
                started_at=stamp, heartbeat_at=stamp, current_step=step)
    set_columns(engine, "execution_steps", f"execution_id = '{execution_id}' AND name = '{step}'",
                status="running", attempts=1, started_at=stamp)


def test_a_running_execution_without_a_recent_heartbeat_is_failed_as_worker_lost(
    spare_app, tables, db_engine
):
    dead = start(spare_app, "flaky", {"records": 1})
    alive = start(spare_app, "flaky", {"records": 1})
    queued = start(spare_app, "flaky", {"records": 1})
    as_running(db_engine, dead, seconds_ago=30)
    as_running(db_engine, alive, seconds_ago=0.1)

    failed = sweep(spare_app, stale_seconds=10)
    assert dead in failed and alive not in failed and queued not in failed

    execution = tables.get(dead)
    assert (execution["status"], execution["current_step"]) == ("failed", "before")
    assert execution["finished_at"] is not None
    error = execution["error"]
    assert (error["kind"], error["step"], error["attempt"]) == ("worker_lost", "before", 1)
    assert error["message"].startswith("the worker running the execution stopped giving signs of life")
    steps = tables.steps(dead)
    assert [(name, s["status"]) for name, s in steps.items()] == [
        ("before", "failed"), ("flaky", "skipped"), ("after", "skipped")]
    assert steps["before"]["error"]["kind"] == "worker_lost"
    last = tables.events(dead)[-1]
    assert (last["type"], last["data"]["error"]["kind"]) == ("execution_failed", "worker_lost")
    assert [tables.get(e)["status"] for e in (alive, queued)] == ["running", "queued"]
    assert dead not in sweep(spare_app, stale_seconds=10), "a second sweep found it again"
    set_columns(db_engine, "executions", f"id = '{alive}'", status="succeeded")


def test_an_execution_failed_as_worker_lost_can_be_resumed(spare_app, tables, db_engine):
    execution_id = start(spare_app, "flaky", {"records": 1})
    as_running(db_engine, execution_id, seconds_ago=30)
    assert execution_id in sweep(spare_app)
    with spare_app.app_context():
        resume_execution(execution_id)
    assert tables.get(execution_id)["status"] == "queued"
    assert [s["status"] for s in tables.steps(execution_id).values()] == ["pending"] * 3


def test_a_row_from_before_heartbeats_counts_from_its_start(spare_app, tables, db_engine):
    execution_id = start(spare_app, "flaky", {"records": 1})
    as_running(db_engine, execution_id, seconds_ago=30)
    set_columns(db_engine, "executions", f"id = '{execution_id}'", heartbeat_at=None)
    assert execution_id in sweep(spare_app, stale_seconds=10)


def test_the_heartbeat_keeps_stamping_and_notices_when_the_execution_is_taken(spare_app, tables, db_engine):
    execution_id = start(spare_app, "flaky", {"records": 1})
    as_running(db_engine, execution_id, seconds_ago=30)
    with spare_app.app_context():
        from webapp.extensions import db

        with Heartbeat(db.engine, uuid.UUID(execution_id), 0.05) as heartbeat:
            wait_for(lambda: tables.get(execution_id)["heartbeat_at"]
                     > datetime.now(timezone.utc) - timedelta(seconds=1),
                     timeout=10, message="a fresh stamp")
            assert execution_id not in sweep(spare_app), "a stamped execution was taken for a dead one"
            assert not heartbeat.lost
            set_columns(db_engine, "executions", f"id = '{execution_id}'", status="failed")
            wait_for(lambda: heartbeat.lost, timeout=10, message="the heartbeat to notice")


def test_a_run_failed_by_the_sweep_while_it_runs_stops_and_writes_nothing_more(spare_app, tables, log_table):
    """A worker cut off from its database for longer than the stale limit
    finds its execution failed and leaves it so."""
    execution_id = start(spare_app, "flaky", {"records": 30, "rate": 20})
    outcome: list[str] = []

    def run() -> None:
        with spare_app.app_context():
            outcome.append(WorkflowBrain.for_current_app().run(uuid.UUID(execution_id)))

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_for(lambda: tables.steps(execution_id)["before"]["status"] == "running", timeout=30,
                 message="the first step to start")
        # As if no stamp had arrived; a stamp (every 50 ms) that lands between the sweep's
        # cutoff and its UPDATE wins that sweep, so sweep again until one takes it.
        wait_for(lambda: execution_id in sweep(spare_app, stale_seconds=0), timeout=10, interval=0.01,
                 message="a sweep to take the execution")
    finally:
        runner.join(timeout=60)
    assert outcome == [LOST]
    execution = tables.get(execution_id)
    assert (execution["status"], execution["error"]["kind"]) == ("failed", "worker_lost")
    steps = tables.steps(execution_id)
    assert [s["status"] for s in steps.values()] == ["failed", "skipped", "skipped"]
    assert steps["flaky"]["attempts"] == 0, "a step ran after the execution was taken away"
    assert [e["type"] for e in tables.events(execution_id)][-1] == "execution_failed"


@pytest.mark.parametrize("beat, stale", [(10, 15), (0, 60), (-1, 60)])
def test_a_stale_limit_shorter_than_two_heartbeats_is_refused(beat, stale):
    with pytest.raises(ValueError, match="WORKFLOW_STALE_SECONDS .* must be at least twice"):
        WorkflowSettings.from_config({"WORKFLOW_HEARTBEAT_SECONDS": beat, "WORKFLOW_STALE_SECONDS": stale})


def test_the_heartbeat_settings_default_and_come_from_the_environment():
    from webapp.config import config_from_env

    settings = WorkflowSettings.from_config(
        config_from_env({"WORKFLOW_HEARTBEAT_SECONDS": "5", "WORKFLOW_STALE_SECONDS": "30"}))
    assert (settings.heartbeat_seconds, settings.stale_seconds) == (5.0, 30.0)
    defaults = WorkflowSettings.from_config({})
    assert {key: value for key, value in defaults.as_config().items() if key.startswith("WORKFLOW_")} == {
        "WORKFLOW_HEARTBEAT_SECONDS": 10.0, "WORKFLOW_STALE_SECONDS": 60.0,
        "WORKFLOW_QUEUED_STALE_SECONDS": 3600.0}
    with pytest.raises(ValueError, match="WORKFLOW_QUEUED_STALE_SECONDS must be positive, got 0"):
        WorkflowSettings.from_config({"WORKFLOW_QUEUED_STALE_SECONDS": 0})


@pytest.mark.usefixtures("celery_worker")
def test_the_beat_task_fails_stalled_executions_in_a_real_worker(app, spare_app, tables, db_engine):
    """What beat sends every minute, run by the session's worker (its
    WORKFLOW_STALE_SECONDS is the default, 60)."""
    execution_id = start(spare_app, "flaky", {"records": 1})
    as_running(db_engine, execution_id, seconds_ago=120)
    from webapp.config import FAIL_STALLED_TASK

    app.extensions["celery"].send_task(FAIL_STALLED_TASK)
    wait_for(lambda: tables.get(execution_id)["status"] == "failed", timeout=60,
             message="the worker to fail the stalled execution")
    assert tables.get(execution_id)["error"]["kind"] == "worker_lost"


def queued_ago(engine, execution_id: str, seconds: float) -> None:
    """The state a lost run message leaves: queued, since ``seconds`` ago."""
    stamp = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    set_columns(engine, "executions", f"id = '{execution_id}'", updated_at=stamp, created_at=stamp)


def test_an_execution_no_worker_took_is_failed_as_lost_in_queue_and_can_be_resumed(spare_app, tables,
                                                                                   db_engine):
    """Its run message was acknowledged and never claimed (the worker died in
    between): it stayed queued for ever, and so did its event streams."""
    lost = start(spare_app, "flaky", {"records": 1})
    waiting = start(spare_app, "flaky", {"records": 1})
    queued_ago(db_engine, lost, 7200)
    queued_ago(db_engine, waiting, 60)

    assert lost not in sweep(spare_app, stale_seconds=10), "queued ones are swept only when asked"
    failed = sweep(spare_app, stale_seconds=10, queued_stale_seconds=3600)
    assert lost in failed and waiting not in failed
    execution = tables.get(lost)
    assert (execution["status"], execution["current_step"]) == ("failed", None)
    assert execution["error"]["kind"] == "lost_in_queue" and execution["finished_at"] is not None
    assert execution["error"]["message"].startswith("no worker took the execution within 3600 s")
    assert [s["status"] for s in tables.steps(lost).values()] == ["skipped"] * 3
    last = tables.events(lost)[-1]
    assert (last["type"], last["data"]["error"]["kind"]) == ("execution_failed", "lost_in_queue")
    assert tables.get(waiting)["status"] == "queued"
    assert lost not in sweep(spare_app, stale_seconds=10, queued_stale_seconds=3600)

    with spare_app.app_context():
        resume_execution(lost)
    assert tables.get(lost)["status"] == "queued"
    assert lost not in sweep(spare_app, stale_seconds=10, queued_stale_seconds=3600), "queued again just now"
    set_columns(db_engine, "executions", f"id IN ('{lost}', '{waiting}')", status="succeeded")


def test_the_cli_sweeps_stale_queued_executions_too(spare_app, tables, db_engine):
    execution_id = start(spare_app, "flaky", {"records": 1})
    queued_ago(db_engine, execution_id, 120)
    result = spare_app.test_cli_runner().invoke(args=["executions", "fail-stalled", "--queued-after", "60"])
    assert result.exit_code == 0, result.output
    assert f"{execution_id} failed (lost_in_queue)" in result.output
    assert tables.get(execution_id)["error"]["kind"] == "lost_in_queue"


@pytest.mark.usefixtures("celery_worker")
def test_the_beat_task_fails_executions_lost_in_the_queue_in_a_real_worker(app, spare_app, tables, db_engine):
    execution_id = start(spare_app, "flaky", {"records": 1})
    queued_ago(db_engine, execution_id, 7200)
    from webapp.config import FAIL_STALLED_TASK

    app.extensions["celery"].send_task(FAIL_STALLED_TASK)
    wait_for(lambda: tables.get(execution_id)["status"] == "failed", timeout=60,
             message="the worker to fail the execution lost in the queue")
    assert tables.get(execution_id)["error"]["kind"] == "lost_in_queue"


def test_the_sweep_and_a_resume_log_only_what_they_committed(spare_app, spare_broker, tables, db_engine):
    """A sweep or a resume whose commit fails (the database went away in
    it) leaves no record saying the execution failed or was resumed."""
    execution_id = start(spare_app, "flaky", {"records": 1})
    as_running(db_engine, execution_id, seconds_ago=30)
    with spare_app.app_context(), commit_refused("execution_failed"), pytest.raises(DatabaseWentAway):
        sweep(spare_app, stale_seconds=10)
    assert tables.get(execution_id)["status"] == "running"
    assert not [m for m in queued_messages(spare_app, spare_broker, execution_id) if "worker_lost" in m]

    assert execution_id in sweep(spare_app, stale_seconds=10)
    with spare_app.app_context(), commit_refused("execution_resumed"), pytest.raises(DatabaseWentAway):
        resume_execution(execution_id)
    assert tables.get(execution_id)["status"] == "failed"
    logged = queued_messages(spare_app, spare_broker, execution_id)
    assert [m for m in logged if "(worker_lost)" in m] and not [m for m in logged if m.startswith("resuming")]
