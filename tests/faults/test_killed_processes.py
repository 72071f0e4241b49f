"""Producers SIGKILLed under log traffic, in the default configuration (no
``EXECLOG_DURABILITY`` set: every record is journaled at ``log()``), with the
broker up or down at the moment of the kill: every record ``log()`` returned
is stored exactly once, replayed by the processes that take their place."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from ..conftest import service_env
from ..support.processes import BIN, ManagedProcess, children, free_port, start_celery_worker, wait_for_port
from ..support.waiting import wait_for
from ..workflow.conftest import ExecutionTables, messages, start, sweep
from .conftest import worker_env
from .harness import assert_nothing_lost, new_trace
from .test_process_faults import post_records
from .test_workflow_faults import FAST_HEARTBEAT, complete

BROKER = pytest.mark.parametrize("broker_down", [False, True], ids=["broker-up", "broker-down"])


def journaled_ids(spool: Path, trace_id: str) -> set[str]:
    """The ids of a trace's records in a spool's segments (hex, as journaled)."""
    ids = set()
    for path in spool.glob("*.seg"):
        for line in path.read_bytes().split(b"\x00", 1)[0].splitlines():
            row = json.loads(line)
            if row[2] == trace_id:
                ids.add(row[0])
    return ids


def replaced(master: ManagedProcess, victims: list[int], count: int) -> list[int]:
    """Wait for ``count`` workers of ``master`` that are not ``victims``."""
    return wait_for(lambda: (new := [p for p in children(master.pid) if p not in victims])
                    and len(new) >= count and new, timeout=60, message="the replacement workers")


@BROKER
def test_every_gunicorn_worker_killed_after_its_last_answer_loses_nothing(
    database_url, private_redis, engine_for, tmp_path, broker_down
):
    worker = start_celery_worker(worker_env(database_url, private_redis.url, tmp_path / "w"),
                                 tmp_path / "worker.log", name="kill-web")
    port = free_port()
    env = service_env(database_url, private_redis.url, tmp_path / "web", GUNICORN_BIND=f"127.0.0.1:{port}",
                      WEB_CONCURRENCY="2")
    assert not any(key == "EXECLOG_DURABILITY" for key in env), "the default configuration"
    master = ManagedProcess("gunicorn", [str(BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py", "wsgi:app"],
                            env, tmp_path / "gunicorn.log").start()
    try:
        wait_for_port(port, timeout=60)
        victims = replaced(master, [], 2)
        trace = new_trace("web-kill")
        # 10 records a request: each worker still holds up to 49 of them (a
        # batch is 50) when it is killed.
        sent = post_records(port, trace, requests=57, per_request=10)
        if broker_down:
            private_redis.stop()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)  # no hook runs: only the journal has what was buffered
        replaced(master, victims, 2)
        if broker_down:
            private_redis.start()
        assert_nothing_lost(engine_for(database_url), trace, sent, timeout=180,
                            label=f"gunicorn workers SIGKILLed, broker {'down' if broker_down else 'up'}")
    finally:
        master.stop()
        worker.stop()


@BROKER
def test_a_celery_child_killed_in_a_step_that_logs_loses_nothing(
    database_url, private_redis, producer_factory, engine_for, log_table, tmp_path, broker_down
):
    env = worker_env(database_url, private_redis.url, tmp_path / "w", **FAST_HEARTBEAT)
    assert "EXECLOG_DURABILITY" not in env, "the default configuration"
    app = producer_factory(database_url, private_redis.url,
                           **{key: float(value) for key, value in FAST_HEARTBEAT.items()})
    tables = ExecutionTables(engine_for(database_url))
    worker = start_celery_worker(env, tmp_path / "worker.log", name="kill-child", concurrency=1)
    try:
        (child,) = wait_for(lambda: children(worker.pid), timeout=30, message="the pool's child")
        # before (2 s) -> flaky -> after (2 s, logging 10 records a second)
        execution_id = start(app, "flaky", {"records": 20, "rate": 10})
        wait_for(lambda: tables.steps(execution_id)["after"]["status"] == "running", timeout=60,
                 message="the last step to start logging")
        if broker_down:
            private_redis.stop()
        os.kill(child, signal.SIGKILL)  # the child only: the worker forks a new one
        wait_for(lambda: execution_id in sweep(app), timeout=30, message="the sweep to fail it")
        assert tables.get(execution_id)["error"]["kind"] == "worker_lost"
        journaled: set[str] = set()
        if broker_down:
            # No new child before the broker is back: what the dead one
            # journaled is all in its segments, unpublished.
            journaled = journaled_ids(tmp_path / "w" / "spool", execution_id)
            assert journaled, "the dead child's records wait in its journal"
            private_redis.start()  # (Celery forks the new child once it has its broker again)
        wait_for(lambda: [p for p in children(worker.pid) if p != child], timeout=60,
                 message="the worker to fork a new child")
        with app.app_context():
            from webapp.workflow import resume_execution

            resume_execution(execution_id)
        assert tables.wait_finished(execution_id, timeout=120)["status"] == "succeeded"
        # The dead child's last records come from its journal, adopted by the
        # new child: both runs' logs are complete.
        said = wait_for(lambda: complete(messages(log_table.rows(execution_id))), timeout=120,
                        message="every log record of both runs")
        rows = log_table.rows(execution_id)
        assert len({row["id"] for row in rows}) == len(rows), "each record once"
        assert journaled <= {str(row["id"]).replace("-", "") for row in rows}
        assert said.count("step after started") == 2
    finally:
        worker.stop()
