"""A Celery worker SIGKILLed in the middle of an execution: the execution
stops being stamped, the sweep fails it as ``worker_lost``, and a resume on a
new worker runs only the step that was cut off."""

from __future__ import annotations

from ..support.processes import start_celery_worker
from ..support.waiting import wait_for
from ..workflow.conftest import ExecutionTables, messages, start, sweep
from .conftest import worker_env

#: Stamp five times a second; a second without a stamp is a dead worker.
FAST_HEARTBEAT = {"WORKFLOW_HEARTBEAT_SECONDS": "0.2", "WORKFLOW_STALE_SECONDS": "1"}
#: The killed worker's last records are in its spool segment, which the next
#: worker adopts: the logs of the cut-off try are complete too.
DISK = {"EXECLOG_DURABILITY": "disk"}


def complete(said: list[str]) -> list[str] | None:
    """The messages, once both runs' are all stored."""
    once = ("step before started", "step before succeeded", "step flaky started", "step flaky succeeded",
            "step after succeeded", "workflow flaky succeeded")
    twice = ("workflow flaky started", "step after started")
    cut = any(m.startswith("workflow flaky failed at step after (worker_lost)") for m in said)
    # Each emitted record, by the first step and by the last one's second try.
    emitted = all(sum(m.startswith(f"record {seq} of 20 ") for m in said) >= 2 for seq in range(20))
    if cut and emitted and all(said.count(m) >= 1 for m in once) and all(said.count(m) >= 2 for m in twice):
        return said
    return None


def test_an_execution_whose_worker_is_killed_is_failed_then_resumed_from_the_cut_step(
    database_url, private_redis, producer_factory, engine_for, log_table, tmp_path
):
    env = worker_env(database_url, private_redis.url, tmp_path / "w", **FAST_HEARTBEAT, **DISK)
    app = producer_factory(database_url, private_redis.url,
                           **{key: float(value) for key, value in FAST_HEARTBEAT.items()})
    tables = ExecutionTables(engine_for(database_url))
    first = start_celery_worker(env, tmp_path / "worker1.log", name="wf-kill-1", concurrency=1)
    second = None
    try:
        # before (2 s) -> flaky -> after (2 s)
        execution_id = start(app, "flaky", {"records": 20, "rate": 10})
        wait_for(lambda: tables.steps(execution_id)["after"]["status"] == "running", timeout=60,
                 message="the last step to start")
        assert execution_id not in sweep(app), "a worker that stamps its execution was taken for a dead one"
        first.kill_group()  # SIGKILL to the worker and its pool process

        assert tables.get(execution_id)["status"] == "running"
        wait_for(lambda: execution_id in sweep(app), timeout=30, message="the sweep to find it")
        execution = tables.get(execution_id)
        assert (execution["status"], execution["error"]["kind"], execution["error"]["step"]) == (
            "failed", "worker_lost", "after")
        assert [(name, s["status"]) for name, s in tables.steps(execution_id).items()] == [
            ("before", "succeeded"), ("flaky", "succeeded"), ("after", "failed")]

        second = start_celery_worker(env, tmp_path / "worker2.log", name="wf-kill-2", concurrency=1)
        with app.app_context():
            from webapp.workflow import resume_execution

            resume_execution(execution_id)
        assert tables.wait_finished(execution_id)["status"] == "succeeded"
        steps = tables.steps(execution_id)
        assert [(name, s["status"], s["attempts"]) for name, s in steps.items()] == [
            ("before", "succeeded", 1), ("flaky", "succeeded", 1), ("after", "succeeded", 2)]
        # The killed worker's prefetched log batches come back after the
        # visibility timeout (10 s here): wait for the whole story.
        said = wait_for(lambda: complete(messages(log_table.rows(execution_id))), timeout=90,
                        message="every log record of both runs")
        assert said.count("step before started") == said.count("step flaky started") == 1
        assert said.count("step after started") == said.count("workflow flaky started") == 2
        events = [e["type"] for e in tables.events(execution_id)]
        assert events[events.index("execution_failed"):] == [
            "execution_failed", "execution_resumed", "execution_started", "step_started", "step_succeeded",
            "execution_succeeded"]
    finally:
        first.stop()
        if second is not None:
            second.stop()
