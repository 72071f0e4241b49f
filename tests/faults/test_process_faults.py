"""Producers that stop, gracefully or not, and a producer flooded while the
broker is down."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ..conftest import service_env
from ..support.processes import (
    BIN, ROOT, ManagedProcess, children, free_port, start_celery_worker, wait_for_port,
)
from ..support.waiting import wait_for
from .conftest import worker_env
from .harness import assert_nothing_lost, new_trace

#: Nothing leaves a producer's buffer on its own during these scenarios:
#: only a shutdown (or the spool) can ship it.
HOLD_EVERYTHING = {
    "EXECLOG_FLUSH_INTERVAL": "600",
    "EXECLOG_BATCH_SIZE": "100000",
    "EXECLOG_MAX_BATCH_SIZE": "100000",
    "EXECLOG_MAX_BUFFER": "100000",
}


def post_records(port: int, trace_id: str, requests: int, per_request: int) -> list[str]:
    ids: list[str] = []
    for n in range(requests):
        body = {"records": [{"trace_id": trace_id, "level": "info", "category": "api",
                             "message": f"request {n} record {i}"} for i in range(per_request)]}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/logs",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            ids.extend(json.load(response)["ids"])
    return ids


@pytest.fixture
def gunicorn(database_url, redis_url, tmp_path):
    """The real gunicorn with the project's config and one worker process."""
    started: list[ManagedProcess] = []

    def start(**extra: str) -> tuple[ManagedProcess, int]:
        port = free_port()
        env = service_env(database_url, redis_url, tmp_path / "web", GUNICORN_BIND=f"127.0.0.1:{port}",
                          WEB_CONCURRENCY="1", **HOLD_EVERYTHING, **extra)
        process = ManagedProcess("gunicorn", [str(BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py",
                                              "wsgi:app"], env, tmp_path / "gunicorn.log").start()
        started.append(process)
        wait_for_port(port, timeout=60)
        return process, port

    yield start
    for process in started:
        process.stop()


def only_worker(master: ManagedProcess) -> int:
    return wait_for(lambda: children(master.pid)[:1], timeout=30, message="a gunicorn worker")[0]


@pytest.mark.usefixtures("celery_worker")
def test_a_gunicorn_worker_sent_sigterm_flushes_its_buffer(gunicorn, engine_for, database_url, log_table):
    master, port = gunicorn()
    trace = new_trace("gunicorn-term")
    sent = post_records(port, trace, requests=20, per_request=50)
    assert log_table.count(trace) == 0, "everything is still buffered in the worker"

    os.kill(only_worker(master), signal.SIGTERM)  # graceful: worker_exit flushes
    assert_nothing_lost(engine_for(database_url), trace, sent, label="gunicorn SIGTERM")
    assert "Worker exiting" in master.output()


@pytest.mark.usefixtures("celery_worker")
def test_a_gunicorn_worker_killed_in_disk_mode_is_replayed_by_its_successor(
    gunicorn, engine_for, database_url, log_table, tmp_path
):
    spool = tmp_path / "web-spool"
    master, port = gunicorn(EXECLOG_DURABILITY="disk", EXECLOG_SPOOL_DIR=str(spool))
    trace = new_trace("gunicorn-kill")
    sent = post_records(port, trace, requests=20, per_request=50)
    victim = only_worker(master)
    assert log_table.count(trace) == 0
    assert sum(p.read_bytes().count(b"\n") for p in spool.glob("*.seg")) == len(sent)

    os.kill(victim, signal.SIGKILL)  # no hook runs: only the spool has the records
    wait_for(lambda: [pid for pid in children(master.pid) if pid != victim], timeout=30,
             message="gunicorn to start a new worker")
    assert_nothing_lost(engine_for(database_url), trace, sent, label="gunicorn SIGKILL, disk mode")
    wait_for(lambda: not any(p.read_bytes().strip(b"\x00") for p in spool.glob("*.seg")), timeout=30,
             message="the replayed segment to go (the new worker's ready, empty one may stay)")


def run_producer(env: dict[str, str], trace: str, count: int, out_dir: Path, *flags: str) -> dict:
    """Run tests/faults/producer.py; its report, with the ids it logged."""
    out_dir.mkdir()
    done = subprocess.run([sys.executable, "-m", "tests.faults.producer", trace, str(count), str(out_dir),
                           *flags], cwd=ROOT, env=env, timeout=300, capture_output=True, text=True)
    if "--crash" in flags:
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out_dir / "report.json").read_text())
    report["ids"] = (out_dir / "ids").read_text().split()
    return report


@pytest.mark.usefixtures("celery_worker")
def test_a_producer_that_crashes_in_disk_mode_loses_nothing(database_url, redis_url, engine_for, tmp_path):
    env = service_env(database_url, redis_url, tmp_path / "producer", EXECLOG_DURABILITY="disk",
                      EXECLOG_SPOOL_DIR=str(tmp_path / "spool"), **HOLD_EVERYTHING)
    trace = new_trace("producer-crash")
    report = run_producer(env, trace, 3000, tmp_path / "out", "--crash")
    assert len(report["ids"]) == 3000 and report["stats"]["published"] == 1  # only the warm-up

    replay = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "execlog", "replay"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    # 3,000, plus records that were published but not yet trimmed (a duplicate is harmless).
    assert int(re.search(r"replayed (\d+) record", replay.stdout).group(1)) >= 3000
    assert_nothing_lost(engine_for(database_url), trace, report["ids"], label="producer crash, disk mode")


def test_a_flood_with_the_broker_down_stays_within_memory_and_lands_later(
    database_url, engine_for, tmp_path
):
    from .harness import PrivateRedis

    broker = PrivateRedis(tmp_path / "redis")  # not started yet: the broker is down
    env = service_env(database_url, broker.url, tmp_path / "producer", EXECLOG_MAX_BUFFER="5000",
                      EXECLOG_SPOOL_DIR=str(tmp_path / "spool"), EXECLOG_PROBE_INTERVAL="1")
    trace = new_trace("flood")
    report = run_producer(env, trace, 200_000, tmp_path / "out", "--sample")
    growth = max(report["rss_mb"]) - report["baseline_rss_mb"]
    print(f"\nflood: rss baseline={report['baseline_rss_mb']:.0f} MB peak growth={growth:.0f} MB "
          f"max buffered={max(report['buffered'])} stats={report['stats']}")
    assert max(report["buffered"]) <= 5000
    # 200,000 of these records held in memory take about 140 MB here.
    assert growth < 40
    assert report["stats"]["dropped"] == 0

    broker.start()
    worker = start_celery_worker(worker_env(database_url, broker.url, tmp_path / "w"),
                                 tmp_path / "worker.log", name="fault-flood")
    try:
        replay = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "execlog", "replay"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        assert replay.returncode == 0, replay.stderr
        assert_nothing_lost(engine_for(database_url), trace, report["ids"], timeout=240,
                            label="flood, broker down")
    finally:
        worker.stop()
        broker.stop()
