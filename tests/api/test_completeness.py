"""The completeness verdict of an execution's log in GET
/api/v1/executions/<id>: what each run (attempt) counted against what is
stored, records from elsewhere apart, losses as a permanent shortfall.

First on rows written as the run and the worker would (so that each state
is reached on purpose), then on real runs by the session's Celery worker,
and on a run whose process drops records for good."""

from __future__ import annotations

import pytest

from webapp.config import celery_config
from webapp.workflow import start_execution
from webapp.workflow.brain import WorkflowBrain

from ..support.processes import free_port
from ..support.waiting import wait_for
from .conftest import wait_for_status


def logs_of(client, execution_id: str) -> dict:
    return client.get(f"/api/v1/executions/{execution_id}").json["logs"]


def test_every_record_stored_is_complete_and_records_from_elsewhere_are_apart(client, rows):
    execution_id = rows.execution(status="succeeded", attempts=1)
    rows.logs(execution_id, 5, attempt=1)
    rows.log_count(execution_id, 1, emitted=5)
    rows.logs(execution_id, 2, prefix="from POST /logs")

    assert logs_of(client, execution_id) == {
        "emitted": 5, "stored": 7, "from_elsewhere": 2, "complete": True, "state": "complete", "reason": None,
        "attempts": [{"attempt": 1, "emitted": 5, "stored": 5, "dropped": 0, "dead_letters": 0,
                      "complete": True, "state": "complete", "reason": None}]}


def test_records_on_their_way_are_in_flight_then_complete(client, rows):
    execution_id = rows.execution(status="failed", attempts=1)
    rows.logs(execution_id, 3, attempt=1)
    rows.log_count(execution_id, 1, emitted=5)

    logs = logs_of(client, execution_id)
    assert (logs["complete"], logs["state"]) == (False, "in_flight")
    assert logs["reason"] == "attempt 1: 2 of 5 records not stored yet"

    rows.logs(execution_id, 2, prefix="landed late", attempt=1)
    assert logs_of(client, execution_id)["complete"] is True


def test_a_running_execution_is_not_complete_until_its_run_reports(client, rows):
    execution_id = rows.execution(status="running", attempts=1)
    rows.logs(execution_id, 3, attempt=1)
    logs = logs_of(client, execution_id)
    assert (logs["emitted"], logs["stored"], logs["complete"], logs["state"]) == (None, 3, False, "running")


def test_records_lost_for_good_are_a_permanent_shortfall_with_the_reason(client, rows):
    execution_id = rows.execution(status="succeeded", attempts=2)
    rows.logs(execution_id, 4, attempt=1)
    rows.log_count(execution_id, 1, emitted=4)
    rows.logs(execution_id, 6, attempt=2)
    rows.log_count(execution_id, 2, emitted=10, dropped=3)
    rows.dead_letter(execution_id, 2)
    rows.dead_letter("another-trace", 2)

    logs = logs_of(client, execution_id)

    assert (logs["emitted"], logs["stored"], logs["complete"], logs["state"]) == (14, 10, False, "incomplete")
    assert logs["reason"] == ("attempt 2: records lost for good: 3 dropped by the process that ran it "
                              "(memory and spool both full or failing), 1 refused by the database "
                              "(see execution_log_dead_letters)")
    first, second = logs["attempts"]
    assert first["state"] == "complete"
    assert (second["dropped"], second["dead_letters"], second["state"]) == (3, 1, "incomplete")


def test_a_run_that_never_reported_is_said_so(client, rows):
    execution_id = rows.execution(status="failed", attempts=1)
    rows.logs(execution_id, 2, attempt=1)
    logs = logs_of(client, execution_id)
    assert (logs["complete"], logs["state"]) == (False, "unreported")
    assert "its run never reported what it logged" in logs["reason"]


def test_an_execution_that_has_not_run_is_pending(client, execution_id):
    logs = logs_of(client, execution_id)
    assert logs == {"emitted": 0, "stored": 0, "from_elsewhere": 0, "complete": False, "state": "pending",
                    "reason": "the execution has not run yet", "attempts": []}


@pytest.mark.usefixtures("celery_worker")
def test_a_real_run_counts_what_it_logged_and_turns_complete(client):
    started = client.post("/api/v1/executions", json={"workflow": "synthetic-emit",
                                                      "input": {"records": 30, "rate": 15}})
    execution_id = started.json["id"]
    running = wait_for(lambda: (lambda b: b if b["status"] == "running" else None)(
        client.get(f"/api/v1/executions/{execution_id}").json), timeout=30, interval=0.1,
        message="the execution to run")
    assert (running["logs"]["complete"], running["logs"]["state"]) == (False, "running")

    wait_for_status(client, execution_id)
    logs = wait_for(lambda: (lambda v: v if v["complete"] else None)(logs_of(client, execution_id)),
                    timeout=30, message="every record stored")
    assert (logs["emitted"], logs["stored"], logs["from_elsewhere"]) == (34, 34, 0)
    stored = client.get(f"/api/v1/executions/{execution_id}/logs?limit=100").json["items"]
    assert {record["attempt"] for record in stored} == {1}


@pytest.mark.usefixtures("celery_worker")
def test_each_run_of_a_resumed_execution_is_an_attempt_and_the_resume_is_from_elsewhere(client):
    started = client.post("/api/v1/executions", json={"workflow": "flaky", "input": {"always": True,
                                                                                     "failure": "bug"}})
    execution_id = started.json["id"]
    wait_for_status(client, execution_id)
    wait_for(lambda: logs_of(client, execution_id)["complete"], timeout=30, message="the first run's log")
    assert client.post(f"/api/v1/executions/{execution_id}/retry").status_code == 202
    wait_for(lambda: client.get(f"/api/v1/executions/{execution_id}").json["attempts"] == 2, timeout=30)
    wait_for_status(client, execution_id)

    logs = wait_for(lambda: (lambda v: v if v["complete"] and v["from_elsewhere"] else None)(
        logs_of(client, execution_id)), timeout=30, message="both runs' logs and the resume's record")
    assert [a["attempt"] for a in logs["attempts"]] == [1, 2]
    assert all(a["emitted"] == a["stored"] > 0 for a in logs["attempts"])
    assert logs["from_elsewhere"] == 1, "the resume request's record"
    assert logs["stored"] == sum(a["stored"] for a in logs["attempts"]) + 1


def test_records_a_run_dropped_for_good_show_as_a_permanent_shortfall(app_factory, spare_broker, tmp_path):
    """The run's process has no broker, can keep 10 records in memory and
    cannot write its spool (a file stands where the directory should be):
    what it cannot keep is dropped for good, counted, and the verdict says so."""
    queuing = app_factory(CELERY=celery_config(spare_broker, tmp_path))  # no worker runs it here
    with queuing.app_context():
        execution_id = start_execution("synthetic-emit", {"records": 40}).id
    occupied = tmp_path / "occupied"
    occupied.write_text("a file where the spool directory should be")
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    dropping = app_factory(CELERY=celery_config(nobody_listens, tmp_path / "dead"), EXECLOG_MAX_BUFFER="10",
                           EXECLOG_BATCH_SIZE="10", EXECLOG_FLUSH_INTERVAL="600",
                           EXECLOG_SPOOL_DIR=str(occupied))
    with dropping.app_context():  # the brain logs through this app's logger
        assert WorkflowBrain.for_current_app().run(execution_id) == "succeeded"

    logger = dropping.extensions["execlog"]
    assert logger.dropped_for(str(execution_id), 1) == 44 == logger.stats()["dropped"]
    logs = logs_of(queuing.test_client(), str(execution_id))
    assert (logs["emitted"], logs["stored"], logs["complete"], logs["state"]) == (44, 0, False, "incomplete")
    assert logs["attempts"][0]["dropped"] == 44
    assert logs["reason"] == ("attempt 1: records lost for good: 44 dropped by the process that ran it "
                              "(memory and spool both full or failing)")


def test_an_execution_older_than_the_retention_window_is_pruned_not_in_flight(app_factory, rows):
    """Retention removed its first records on purpose: nothing is on its
    way, and the verdict says so instead of waiting for ever. A younger
    execution with the same shortfall is still in flight."""
    from datetime import datetime, timedelta, timezone

    client = app_factory(EXECLOG_RETENTION_DAYS=7).test_client()
    old = rows.execution(status="succeeded", attempts=1,
                         created_at=datetime.now(timezone.utc) - timedelta(days=9))
    rows.logs(old, 3, attempt=1)
    rows.log_count(old, 1, emitted=5)
    young = rows.execution(status="succeeded", attempts=1)
    rows.logs(young, 3, attempt=1)
    rows.log_count(young, 1, emitted=5)

    logs = logs_of(client, old)
    assert (logs["complete"], logs["state"], logs["attempts"][0]["state"]) == (False, "pruned", "pruned")
    assert logs["reason"].startswith("attempt 1: 3 of 5 records kept; those logged before ")
    assert logs["reason"].endswith(" UTC were removed by retention (EXECLOG_RETENTION_DAYS)")
    assert logs_of(client, young)["state"] == "in_flight"
    assert logs_of(app_factory(EXECLOG_RETENTION_DAYS=0).test_client(), old)["state"] == "in_flight", \
        "with everything kept, nothing was pruned"
    old_complete = rows.execution(status="succeeded", attempts=1,
                                  created_at=datetime.now(timezone.utc) - timedelta(days=9))
    rows.logs(old_complete, 2, attempt=1)
    rows.log_count(old_complete, 1, emitted=2)
    assert logs_of(client, old_complete)["state"] == "complete", "an old log still whole is complete"
