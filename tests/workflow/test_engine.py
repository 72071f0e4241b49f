"""Workflows run end to end: started as the CLI and the API start them, run
by the session's real Celery worker on the ``workflows`` queue, with their
state in PostgreSQL, their progress on Redis pub/sub and their logs in
``execution_logs``."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import redis

from webapp.workflow import (
    ExecutionNotFound,
    ExecutionNotResumable,
    IdempotencyConflict,
    InvalidInput,
    UnknownWorkflow,
    resume_execution,
)
from webapp.names import RUN_TASK

from ..support.waiting import wait_for
from .conftest import messages, start, wait_for_log

pytestmark = pytest.mark.usefixtures("celery_worker")

ROADMAP_STEPS = ["intent", "curriculum", "validate", "schedule"]


def resume(app, execution_id: str) -> None:
    with app.app_context():
        resume_execution(execution_id)


def test_the_roadmap_workflow_turns_a_goal_into_a_roadmap(app, tables, log_table):
    goal = "I'm new to Python, can spend 1 hour a day and want to be ready in 4 months"
    execution_id = start(app, "roadmap", {"goal": goal})

    execution = tables.wait_finished(execution_id)
    assert (execution["status"], execution["error"], execution["attempts"]) == ("succeeded", None, 1)
    roadmap = execution["result"]
    assert (roadmap["roadmap_id"], roadmap["topic"], roadmap["level"]) == (execution_id, "python", "beginner")
    assert (roadmap["weekly_hours"], roadmap["deadline_weeks"]) == (7.0, 18)
    assert roadmap["weeks_needed"] == len(roadmap["weeks"]) <= 18
    assert sum(week["hours"] for week in roadmap["weeks"]) == pytest.approx(roadmap["total_hours"])
    assert all(week["hours"] <= 7.0 for week in roadmap["weeks"])
    assert [m["title"] for m in roadmap["milestones"]] == ["Foundations complete", "Core complete",
                                                           "Advanced complete"]
    steps = tables.steps(execution_id)
    assert [(name, s["status"], s["attempts"]) for name, s in steps.items()] == [
        (name, "succeeded", 1) for name in ROADMAP_STEPS]
    assert all(s["duration_ms"] >= 0 and s["finished_at"] >= s["started_at"] for s in steps.values())

    rows = wait_for_log(log_table, execution_id, "workflow roadmap succeeded")
    assert rows[0]["message"] == "workflow roadmap started"
    stepped = [row["step"] for row in rows if row["step"] is not None]
    assert sorted(stepped, key=ROADMAP_STEPS.index) == stepped, "logs out of step order"
    assert list(dict.fromkeys(stepped)) == ROADMAP_STEPS
    for name in ROADMAP_STEPS:
        started, done = (next(r for r in rows if r["message"] == f"step {name} {what}")
                         for what in ("started", "succeeded"))
        assert (started["step"], started["category"], done["step"]) == (name, "workflow", name)
        assert done["duration_ms"] >= 0
    by_message = {row["message"]: row for row in rows}
    intent = by_message["analysing the learning goal"]
    assert (intent["step"], intent["category"], intent["agent_name"]) == ("intent", "agent", "intent-analyst")
    tool = next(r for r in rows if r["category"] == "tool")
    assert (tool["step"], tool["details"]["tool_name"], tool["level"]) == (
        "intent", "catalog.match_topic", "debug")
    layout = by_message["schedule layout completed"]
    assert (layout["step"], layout["roadmap_id"], layout["details"]["weeks"]) == (
        "schedule", execution_id, roadmap["weeks_needed"])
    assert by_message["workflow roadmap succeeded"]["duration_ms"] > 0


def test_an_impossible_budget_fails_validation_with_a_clear_error(app, tables, log_table):
    execution_id = start(app, "roadmap", {"goal": "Learn machine learning in 2 weeks, 3 hours a week"})

    execution = tables.wait_finished(execution_id)
    assert execution["status"] == "failed"
    error = execution["error"]
    assert {k: error[k] for k in ("kind", "step", "attempt", "exception")} == {
        "kind": "invalid_input", "step": "validate", "attempt": 1, "exception": "InvalidInput"}
    assert error["message"] == (
        "the roadmap cannot be built: it needs 84 h of study, but 3 h a week for 2 weeks gives 6 h; "
        "allow at least 28 weeks at 3 h a week, or 42 h a week for 2 weeks")
    assert error["details"]["budget_hours"] == 6
    assert execution["current_step"] == "validate" and execution["result"] is None
    steps = tables.steps(execution_id)
    assert [(s["status"], s["attempts"]) for s in steps.values()] == [
        ("succeeded", 1), ("succeeded", 1), ("failed", 1), ("skipped", 0)]
    assert steps["validate"]["error"] == error

    rows = wait_for_log(log_table, execution_id, f"workflow roadmap failed at step validate (invalid_input): "
                                                 f"{error['message']}")
    assert "step validate failed (invalid_input): " + error["message"] in messages(rows)
    agent_error = next(r for r in rows if r["message"] == "the curriculum does not fit")
    assert (agent_error["level"], agent_error["agent_name"], agent_error["details"]["error"]) == (
        "error", "roadmap-validator", error["message"])


def test_bad_input_is_refused_before_anything_is_stored(app, tables):
    with pytest.raises(InvalidInput) as refused:
        start(app, "roadmap", {"goal": "py", "weekly_hour": 3, "level": "guru"})
    assert refused.value.fields == {
        "goal": ["Length must be between 3 and 2000."],
        "weekly_hour": ["Unknown field."],
        "level": ["Must be one of: beginner, intermediate, advanced."],
    }
    with pytest.raises(InvalidInput, match="the input must be a JSON object, got list"):
        start(app, "roadmap", ["learn python"])
    with pytest.raises(InvalidInput, match="the input is not JSON: Out of range float values"):
        start(app, "roadmap", {"goal": "learn python", "weekly_hours": float("nan")})
    with pytest.raises(UnknownWorkflow, match="no workflow named 'roadmaps'; available: flaky, roadmap"):
        start(app, "roadmaps", {"goal": "learn python"})
    with tables.engine.connect() as connection:
        count = connection.exec_driver_sql(
            "SELECT count(*) FROM executions WHERE input->>'goal' IN ('py', 'learn python')").scalar()
    assert count == 0


def test_a_step_that_fails_twice_is_retried_by_its_policy(app, tables, log_table):
    execution_id = start(app, "flaky", {"fail_times": 2})

    execution = tables.wait_finished(execution_id)
    assert execution["status"] == "succeeded"
    assert {k: execution["result"][k] for k in ("records", "size")} == {"records": 10, "size": 64}
    flaky = tables.steps(execution_id)["flaky"]
    assert (flaky["status"], flaky["attempts"], flaky["output"]) == (
        "succeeded", 3, {"attempt": 3, "failed_before": 2})
    kinds = [(e["type"], e["data"].get("attempt")) for e in tables.events(execution_id)
             if e["data"].get("step") == "flaky"]
    assert kinds == [("step_started", 1), ("step_failed", 1), ("step_retrying", 1),
                     ("step_started", 2), ("step_failed", 2), ("step_retrying", 2),
                     ("step_started", 3), ("step_succeeded", 3)]

    rows = wait_for_log(log_table, execution_id, "workflow flaky succeeded")
    retries = [r for r in rows if r["category"] == "retry"]
    assert [r["message"].split(" in ")[0] for r in retries] == [
        "step flaky failed (transient); try 2 of 3", "step flaky failed (transient); try 3 of 3",
        "step flaky succeeded on try 3"]
    assert all(r["step"] == "flaky" for r in retries)


def test_a_failed_execution_resumes_from_its_failed_step(app, tables, log_table):
    execution_id = start(app, "flaky", {"fail_times": 1, "failure": "bug"})

    failed = tables.wait_finished(execution_id)
    assert failed["status"] == "failed"
    assert {k: failed["error"][k] for k in ("kind", "message", "step", "attempt")} == {
        "kind": "runner_bug", "message": "RuntimeError: failing try 1 on purpose (bug)",
        "step": "flaky", "attempt": 1}
    assert [s["status"] for s in tables.steps(execution_id).values()] == ["succeeded", "failed", "skipped"]
    rows = wait_for_log(log_table, execution_id, "workflow flaky failed at step flaky (runner_bug): "
                                                 "RuntimeError: failing try 1 on purpose (bug)")
    bug = next(r for r in rows if r["message"].startswith("step flaky failed (runner_bug)"))
    assert "Traceback" in bug["details"]["traceback"] and "RuntimeError" in bug["details"]["traceback"]

    resume(app, execution_id)
    resumed = tables.wait_finished(execution_id)
    assert (resumed["status"], resumed["error"], resumed["attempts"]) == ("succeeded", None, 2)
    steps = tables.steps(execution_id)
    assert [(s["status"], s["attempts"]) for s in steps.values()] == [
        ("succeeded", 1), ("succeeded", 2), ("succeeded", 1)]

    wait_for_log(log_table, execution_id, "step after succeeded")  # logged by the worker
    # ... and this by the process that resumed, flushed within 2 s:
    rows = wait_for_log(log_table, execution_id, "resuming workflow flaky from step flaky")
    started = [r["step"] for r in rows if re.fullmatch(r"step \S+ started", r["message"])]
    assert started == ["before", "flaky", "flaky", "after"]  # "before" ran once, before the failure
    runs = [i for i, r in enumerate(rows) if r["message"] == "workflow flaky started"]
    assert [rows[i]["details"]["completed_steps"] for i in runs] == [[], ["before"]]
    assert runs[0] < messages(rows).index("resuming workflow flaky from step flaky") < runs[1]
    types = [e["type"] for e in tables.events(execution_id)]
    after_resume = types[types.index("execution_resumed"):]
    assert after_resume == ["execution_resumed", "execution_started", "step_started", "step_succeeded",
                            "step_started", "step_succeeded", "execution_succeeded"]


def test_a_resumed_step_gets_its_retries_again(app, tables):
    execution_id = start(app, "flaky", {"fail_times": 3})
    failed = tables.wait_finished(execution_id)
    assert (failed["status"], failed["error"]["kind"], failed["error"]["attempt"]) == (
        "failed", "transient", 3)

    resume(app, execution_id)
    assert tables.wait_finished(execution_id)["status"] == "succeeded"
    assert tables.steps(execution_id)["flaky"]["output"] == {"attempt": 4, "failed_before": 3}


def test_only_a_failed_execution_can_be_resumed(app, tables):
    execution_id = start(app, "synthetic-emit", {"records": 1})
    assert tables.wait_finished(execution_id)["status"] == "succeeded"
    with pytest.raises(ExecutionNotResumable, match=f"execution {execution_id} is succeeded; only a failed"):
        resume(app, execution_id)
    with pytest.raises(ExecutionNotFound, match="no execution"):
        resume(app, str(uuid.uuid4()))
    with pytest.raises(ExecutionNotFound, match="not a UUID"):
        resume(app, "42")


def test_progress_events_arrive_in_order_on_the_channel_and_in_the_table(app, tables, redis_url):
    subscriber = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    subscriber.psubscribe("execution:*")
    try:
        execution_id = start(app, "flaky", {"fail_times": 1, "records": 2})
        received = _events_until_final(subscriber, execution_id)
    finally:
        subscriber.close()

    stored = tables.events(execution_id)
    assert [(e["id"], e["type"], e["data"]) for e in received] == [
        (e["id"], e["type"], e["data"]) for e in stored]
    assert [e["id"] for e in stored] == sorted({e["id"] for e in stored})
    assert [(e["type"], e["data"].get("step")) for e in stored] == [
        ("execution_queued", None), ("execution_started", None),
        ("step_started", "before"), ("step_succeeded", "before"),
        ("step_started", "flaky"), ("step_failed", "flaky"), ("step_retrying", "flaky"),
        ("step_started", "flaky"), ("step_succeeded", "flaky"),
        ("step_started", "after"), ("step_succeeded", "after"),
        ("execution_succeeded", None),
    ]
    assert {e["execution_id"] for e in received} == {execution_id}


def _events_until_final(subscriber, execution_id: str, timeout: float = 60.0) -> list[dict]:
    channel = f"execution:{execution_id}".encode()
    received: list[dict] = []

    def final_seen() -> bool:
        message = subscriber.get_message(timeout=0.5)
        if message is not None and message["channel"] == channel:
            received.append(json.loads(message["data"]))
        return bool(received) and received[-1]["type"] in ("execution_succeeded", "execution_failed")

    wait_for(final_seen, timeout=timeout, interval=0, message=f"the final event of {execution_id}")
    return received


def test_a_second_delivery_of_the_run_task_does_nothing(app, tables, log_table):
    execution_id = start(app, "synthetic-emit", {"records": 2})
    assert tables.wait_finished(execution_id)["status"] == "succeeded"
    events = tables.events(execution_id)

    app.extensions["celery"].send_task(RUN_TASK, args=(execution_id,))
    wait_for_log(log_table, execution_id, "run request ignored: the execution is succeeded, not queued")
    assert tables.events(execution_id) == events
    assert tables.get(execution_id)["attempts"] == 1
    assert tables.steps(execution_id)["emit"]["attempts"] == 1


def test_an_idempotency_key_starts_a_request_once(app, tables):
    key = f"key-{uuid.uuid4()}"
    first = start(app, "synthetic-emit", {"records": 1}, idempotency_key=key)
    again = start(app, "synthetic-emit", {"records": 1}, idempotency_key=key)
    assert first == again
    with pytest.raises(IdempotencyConflict, match=f"the idempotency key '{key}' was used for another"):
        start(app, "synthetic-emit", {"records": 2}, idempotency_key=key)
    assert tables.wait_finished(first)["attempts"] == 1


def test_an_event_is_stored_and_broadcast_with_the_commit_of_its_state_change(
    app_factory, spare_broker, tmp_path, tables
):
    """publish() adds the event to the caller's transaction: nothing is in
    the table or on the channel until the caller commits, and a rollback
    takes the event away with the state change it announced."""
    from webapp.config import celery_config
    from webapp.extensions import db
    from webapp.workflow import current_notifier
    from webapp.workflow.notify import channel

    app = app_factory(CELERY=celery_config(spare_broker, tmp_path))  # no worker takes the run
    execution_id = uuid.UUID(start(app, "synthetic-emit", {"records": 1}))
    listener = redis.Redis.from_url(spare_broker).pubsub()
    listener.subscribe(channel(execution_id))
    assert listener.get_message(timeout=5)["type"] == "subscribe"

    def stored() -> list[str]:
        return [event["type"] for event in tables.events(str(execution_id))]

    with app.app_context():
        current_notifier().publish(execution_id, "step_started", {"step": "emit"})
        assert stored() == ["execution_queued"] and listener.get_message(timeout=0.5) is None
        db.session.rollback()
        assert stored() == ["execution_queued"] and listener.get_message(timeout=0.5) is None, "gone"

        current_notifier().publish(execution_id, "step_started", {"step": "emit"})
        db.session.commit()
        assert stored() == ["execution_queued", "step_started"]
        message = listener.get_message(timeout=5)
        assert json.loads(message["data"])["type"] == "step_started"
