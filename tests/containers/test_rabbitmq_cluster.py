"""The stack on a three-node RabbitMQ cluster (docker/docker-compose.rabbitmq.yml),
brought up as ``make docker-up-rabbitmq`` does under a project of its own.

The nodes form one cluster by themselves (classic_config peer discovery);
``logs`` and ``workflows`` are quorum queues with a member on each node; two
worker containers consume them. Under steady traffic through the API
(tests/containers/traffic.py) the node leading ``logs`` is killed
(``docker kill``): the two others elect a new leader and keep the queue, the
app fails over to them, and once the node is started again and has rejoined,
every record and execution the API acknowledged is stored exactly once, and
both workers took log batches. Then, with the workers paused, a backlog in
``logs`` outlives the death of the queue's leader.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from ..support.waiting import wait_for
from .conftest import REPORT, reference_run
from .traffic import LogTraffic, settle, settle_logs, steady_traffic

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

#: Records acknowledged in each phase (before the kill, while the node is
#: down, after it rejoined).
PHASE = 1500
IMAGE = "rabbitmq:3.10"
#: The API's logger counters (GET /metrics, summed over its processes).
SPOOLED = 'execlog_records_total{outcome="spooled"}'
REPLAYED = 'execlog_records_total{outcome="replayed"}'
BUFFERED = "execlog_buffered_records"


@pytest.fixture(scope="module")
def cluster_engine(cluster):
    engine = cluster.engine()
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def cluster_reference(cluster, cluster_engine) -> list[str]:
    return reference_run(cluster, cluster_engine)


def more(traffic: LogTraffic, count: int = PHASE) -> None:
    traffic.wait_acknowledged(len(traffic.acknowledged) + count)


def test_the_nodes_form_one_cluster_and_the_queues_have_a_member_on_each(cluster):
    details = json.loads(subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True,
                                        text=True, check=True).stdout)[0]
    standin = (details["Config"].get("Labels") or {}).get("org.webapp.local-standin") == IMAGE
    REPORT.append(f"image size: {IMAGE} {details['Size'] / 1e6:.0f} MB"
                  + (" (local stand-in)" if standin else ""))
    assert cluster.compose("config", "--quiet") == ""
    everyone = [f"rabbit@{node}" for node in cluster.nodes]
    for node in cluster.nodes:
        assert cluster.running_nodes(ask=node) == everyone
    for name in ("logs", "workflows", "logs.rejected", "workflows.rejected"):
        queue = cluster.queue(name, ask="rmq1")
        assert queue["type"] == "quorum", queue
        assert sorted(queue["members"]) == sorted(queue["online"]) == everyone, queue
    # Two worker containers, each a consumer of logs and of workflows.
    assert len(cluster.containers("worker")) == 2
    assert cluster.queue("logs", ask="rmq1")["consumers"] == 2
    assert cluster.queue("workflows", ask="rmq1")["consumers"] == 2
    # The app's user, not guest (whom RabbitMQ lets in from localhost only).
    users = cluster.rabbitmqctl("rmq2", "list_users", "--formatter", "json")
    assert [user["user"] for user in json.loads(users)] == ["webapp"]


def test_the_node_leading_logs_killed_under_traffic(cluster, cluster_engine, cluster_reference, tally):
    workers = cluster.containers("worker")
    assert len(workers) == 2
    since = datetime.now(timezone.utc).isoformat()
    with steady_traffic(cluster, "rabbitmq-node-kill") as (logs, flows):
        more(logs)
        leader = cluster.node_of(cluster.queue("logs", ask="rmq1")["leader"])
        others = [node for node in cluster.nodes if node != leader]
        connections = cluster.connections(ask=others[0])
        spooled_before, replayed_before = cluster.metric(SPOOLED), cluster.metric(REPLAYED)
        [container] = cluster.containers(leader)
        cluster.docker("kill", container)  # SIGKILL: no goodbye to the cluster or the clients
        killed = time.monotonic()
        acknowledged_before = len(logs.acknowledged)
        wait_for(lambda: not cluster.state(container)["Running"], timeout=30, message=f"{leader} to die")
        exit_code = cluster.state(container)["ExitCode"]

        def elected() -> str | None:
            queue = cluster.queue("logs", ask=others[0])
            new = cluster.node_of(queue["leader"]) if queue["leader"] else None
            return new if new in others else None

        new_leader = wait_for(elected, timeout=60, interval=0.2,
                              message="logs to get a leader on a live node")
        election = time.monotonic() - killed
        assert sorted(cluster.queue("logs", ask=others[0])["online"]) == [f"rabbit@{n}" for n in others]
        more(logs)  # acknowledged while the node is down
        assert not cluster.state(container)["Running"], f"something started the killed {leader} again"
        during = len(logs.acknowledged) - acknowledged_before
        spooled = cluster.metric(SPOOLED) - spooled_before
        cluster.compose("start", leader)
        cluster.wait_healthy(leader)
        wait_for(lambda: len(cluster.queue("logs", ask=leader)["online"]) == 3, timeout=60,
                 message=f"logs' member on {leader} to be back")
        down = time.monotonic() - killed
        more(logs)
    settle(cluster, cluster_engine, logs, flows, cluster_reference, tally)
    replayed = cluster.metric(REPLAYED) - replayed_before
    taken = {f"worker@{worker[:12]}": cluster.batches_stored(worker, since) for worker in workers}
    rejected = cluster.queue("logs.rejected", ask=new_leader)["messages"]
    held = connections.count(leader)
    waits = execution_waits(cluster_engine, flows.acknowledged)
    tally.notes += [
        f"killed {leader}, the leader of logs, holding {held} of the app's {len(connections)} connections "
        f"(exited {exit_code}); new leader {new_leader} after {election:.1f} s; "
        f"{leader} back in the cluster {down:.0f} s after the kill",
        f"acknowledged while {leader} was down {during}; the API spooled {spooled:.0f} records and "
        f"replayed {replayed:.0f} itself",
        "log batches each worker stored (from its log): "
        + ", ".join(f"{node} {count}" for node, count in sorted(taken.items())),
        f"logs.rejected holds {rejected}",
        f"the longest an execution waited for a worker: {max(waits):.1f} s ({sum(w > 5 for w in waits)} "
        f"waited more than 5 s)",
    ]
    assert during > 0
    assert all(count > 0 for count in taken.values()), taken
    assert rejected == 0


def execution_waits(engine: sa.engine.Engine, ids: list[str]) -> list[float]:
    """Seconds from each execution's creation to its start by a worker."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT EXTRACT(EPOCH FROM started_at - created_at) FROM executions "
                    "WHERE CAST(id AS text) = ANY(:ids)"), {"ids": ids})
        return [float(row[0]) for row in rows if row[0] is not None] or [0.0]


def test_a_backlog_in_logs_outlives_its_leader(cluster, cluster_engine, tally):
    """No worker consumes (both paused) while the API sends log batches: the
    confirmed batches wait in ``logs``. Its leader is killed; the two other
    members hold every one of them, and the workers, let go, store them."""
    workers = cluster.containers("worker")
    for worker in workers:
        cluster.docker("pause", worker)
    paused = True
    try:
        logs = LogTraffic(cluster, "rabbitmq-backlog").start()
        try:
            more(logs)
        finally:
            logs.stop()
        leader = cluster.node_of(cluster.queue("logs", ask="rmq1")["leader"])
        others = [node for node in cluster.nodes if node != leader]
        last: list[int] = []

        def settled() -> int | None:
            """The backlog, once the API shipped every record and it stopped growing."""
            count = cluster.ready_messages("logs", ask=others[0])
            last.append(count)
            steady = len(last) >= 2 and last[-2] == count and cluster.metric(BUFFERED) == 0
            return count if steady and count > 0 else None

        backlog = wait_for(settled, timeout=60, interval=3.0, message="the API to ship its records")
        [container] = cluster.containers(leader)
        cluster.docker("kill", container)
        wait_for(lambda: not cluster.state(container)["Running"], timeout=30, message=f"{leader} to die")
        wait_for(lambda: cluster.node_of(cluster.queue("logs", ask=others[0])["leader"] or "@") in others,
                 timeout=60, interval=0.2, message="logs to get a leader on a live node")
        # The paused workers' unacknowledged messages come back too, as
        # their connections died with the node.
        kept = wait_for(lambda: cluster.ready_messages("logs", ask=others[1]) or None, timeout=30,
                        message="the backlog on the live nodes")
        for worker in workers:
            cluster.docker("unpause", worker)
        paused = False
        settle_logs(cluster_engine, logs, tally)
        tally.notes.append(f"{backlog} batches waited in logs when {leader}, its leader, was killed; "
                           f"{kept} were ready on the two others")
        assert kept >= backlog
        cluster.compose("start", leader)
        cluster.wait_healthy(leader)
    finally:
        if paused:
            for worker in workers:
                cluster.docker("unpause", worker)
