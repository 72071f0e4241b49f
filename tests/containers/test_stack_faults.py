"""Containers of the live stack die or stop under steady traffic; whatever
the API acknowledged is stored exactly once.

Each scenario runs POST /logs traffic and roadmap executions from threads
(tests/containers/traffic.py), breaks a container through Docker or Compose,
lets it come back, then waits for every acknowledged record and execution
and counts: missing, twice, and what requests that got no answer left.
"""

from __future__ import annotations

import time

import pytest

from ..support.waiting import wait_for
from .traffic import LogTraffic, settle, steady_traffic

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

#: Records acknowledged in each phase of a scenario (before, during, after).
PHASE = 1500
#: How long the broker stays down (the issue's scenario).
REDIS_DOWN_SECONDS = 20.0
#: The API's logger counters (GET /metrics, summed over its processes).
SPOOLED = 'execlog_records_total{outcome="spooled"}'
REPLAYED = 'execlog_records_total{outcome="replayed"}'


def more(traffic: LogTraffic, count: int = PHASE) -> None:
    traffic.wait_acknowledged(len(traffic.acknowledged) + count)


def test_worker_killed_then_started_again(stack, engine, roadmap_reference, tally):
    with steady_traffic(stack, "worker-kill") as (logs, flows):
        more(logs)
        [worker] = stack.containers("worker")
        stack.docker("kill", worker)  # SIGKILL, to the whole container
        wait_for(lambda: not stack.state(worker)["Running"], timeout=30, message="the worker to die")
        state = stack.state(worker)
        tally.notes.append(f"worker exited {state['ExitCode']}")
        more(logs)  # the API goes on acknowledging while no worker runs
        assert not stack.state(worker)["Running"], "something started the killed worker again"
        stack.compose("start", "worker")
        stack.wait_ready()
        more(logs)
    settle(stack, engine, logs, flows, roadmap_reference, tally)
    assert logs.unanswered == 0 and not logs.refused


def test_api_restarted_with_sigterm(stack, engine, roadmap_reference, tally):
    with steady_traffic(stack, "api-restart") as (logs, flows):
        more(logs)
        [api] = stack.containers("api")
        before = stack.state(api)["StartedAt"]
        stack.compose("restart", "api")  # stop_signal SIGTERM, stop_grace_period, then start
        state = stack.state(api)
        assert state["StartedAt"] != before and state["Running"]
        stack.wait_ready()
        more(logs)
    settle(stack, engine, logs, flows, roadmap_reference, tally)


def test_two_workers_share_the_logs_queue(stack, engine, roadmap_reference, tally):
    stack.wait_ready()
    stack.compose("up", "-d", "--no-deps", "--scale", "worker=2", "worker")
    try:
        nodes = {f"worker@{container[:12]}" for container in stack.containers("worker")}
        assert len(nodes) == 2
        before = stack.batches_taken(nodes)
        with steady_traffic(stack, "two-workers") as (logs, flows):
            more(logs, 3 * PHASE)
        settle(stack, engine, logs, flows, roadmap_reference, tally)
        taken = {node: count - before[node] for node, count in stack.batches_taken(nodes).items()}
        tally.notes.append("log batches taken by each worker: " + ", ".join(
            f"{node} {count}" for node, count in sorted(taken.items())))
        assert all(count > 0 for count in taken.values()), taken
    finally:
        stack.compose("up", "-d", "--no-deps", "--scale", "worker=1", "worker")
    wait_for(lambda: len(stack.containers("worker")) == 1, timeout=90, message="one worker again")


def test_redis_stopped_for_20_seconds(stack, engine, roadmap_reference, tally):
    with steady_traffic(stack, "redis-stop") as (logs, flows):
        more(logs)
        spooled_before, replayed_before = stack.metric(SPOOLED), stack.metric(REPLAYED)
        stack.compose("stop", "redis")
        stopped = time.monotonic()
        acknowledged_before = len(logs.acknowledged)
        wait_for(lambda: time.monotonic() - stopped >= REDIS_DOWN_SECONDS, timeout=REDIS_DOWN_SECONDS + 5,
                 interval=0.5, message="the end of the outage")
        during = len(logs.acknowledged) - acknowledged_before
        spooled = stack.metric(SPOOLED) - spooled_before
        stack.compose("start", "redis")
        stack.wait_ready()
        more(logs)
    settle(stack, engine, logs, flows, roadmap_reference, tally)
    # Stored now, so replayed: by the API's processes, or by the worker's,
    # which share the spool volume and adopt any segment nobody holds.
    replayed = stack.metric(REPLAYED) - replayed_before
    tally.notes.append(f"acknowledged while Redis was down {during}; the API spooled {spooled:.0f} "
                       f"records and replayed {replayed:.0f} itself")
    assert during > 0 and spooled > 0
