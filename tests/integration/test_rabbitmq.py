"""RabbitMQ as the broker (a virtual host of the session's own on the
machine's RabbitMQ): records exactly once through quorum queues, publisher
confirms, garbage set aside in ``logs.rejected``, and a queue left classic
by an earlier version refused at start with the fix."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest

from webapp.config import celery_config
from webapp.execlog.sinks import CelerySink
from webapp.names import INSERT_BATCH_TASK

from ..conftest import service_env
from ..support.processes import ManagedProcess, celery_worker as worker_process, start_celery_worker
from ..support.rabbitmq import VirtualHost
from ..support.waiting import wait_for


@pytest.fixture(scope="module")
def vhost() -> Iterator[VirtualHost]:
    host = VirtualHost().create()
    yield host
    host.delete()


@pytest.fixture(scope="module")
def rabbit_worker(database_url: str, vhost: VirtualHost,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    var_dir = tmp_path_factory.mktemp("rabbit-worker")
    worker = start_celery_worker(service_env(database_url, vhost.url, var_dir), var_dir / "worker.log",
                                 name=f"rabbit-{os.getpid()}")
    yield worker
    worker.stop()


@pytest.fixture
def rabbit_app(app_factory, vhost, tmp_path):
    return app_factory(CELERY=celery_config(vhost.url, tmp_path))


def test_records_travel_through_quorum_queues_exactly_once(
    rabbit_app, rabbit_worker, vhost, log_table, trace_id
):
    """4 threads x 1,000 records, each thread's in its order."""
    logger = rabbit_app.extensions["execlog"]
    traces = [f"{trace_id}-{n}" for n in range(4)]
    sent: dict[str, list[str]] = {trace: [] for trace in traces}

    def produce(trace: str) -> None:
        sent[trace].extend(logger.info(trace, "agent", f"record {i}", details={"i": i}).id
                           for i in range(1000))

    threads = [threading.Thread(target=produce, args=(trace,)) for trace in traces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logger.flush(timeout=60) is True
    for trace in traces:
        rows = log_table.wait_for_count(trace, 1000)
        assert [str(row["id"]) for row in rows] == sent[trace], "every record, once, in order"
        assert [row["details"]["i"] for row in rows] == list(range(1000))
    stats = logger.stats()
    assert stats["published"] == 4000 and stats["spooled"] == 0

    queues = vhost.queues()
    for name in ("logs", "workflows"):
        assert queues[name]["type"] == "quorum"
        arguments = {key: value for key, _kind, value in queues[name]["arguments"]}
        assert arguments["x-delivery-limit"] == 10
        assert arguments["x-dead-letter-routing-key"] == f"{name}.rejected"
        assert queues[f"{name}.rejected"]["type"] == "quorum"


def test_a_batch_delivered_twice_is_stored_once(rabbit_app, rabbit_worker, vhost, log_table, trace_id):
    logger = rabbit_app.extensions["execlog"]
    rows = [logger.info(trace_id, "workflow", f"twice {i}").wire_bytes() for i in range(20)]
    assert logger.flush(timeout=30) is True  # the logger ships them once ...
    sink = CelerySink(rabbit_app.extensions["celery"])
    try:
        sink.send(rows)  # ... and the same batch goes again, as after a redelivery
        sink.send(rows[:7])
    finally:
        sink.close()

    log_table.wait_for_count(trace_id, 20)
    wait_for(lambda: vhost.ready("logs") == 0, timeout=30, message="the logs queue to drain")
    assert log_table.count(trace_id) == 20


def test_a_batch_counts_as_published_only_once_rabbitmq_confirmed_it(app_factory, tmp_path, trace_id):
    """No worker on this virtual host. A queue deleted under the producer
    cannot take a batch: the publish is refused (mandatory, confirmed), the
    batch goes to the spool and is published once the queue is back."""
    host = VirtualHost().create()
    try:
        logger = app_factory(CELERY=celery_config(host.url, tmp_path),
                             EXECLOG_PROBE_INTERVAL=0.2).extensions["execlog"]
        logger.info(trace_id, "agent", "first")
        assert logger.flush(timeout=30) is True
        with kombu.Connection(host.url) as connection:
            connection.default_channel.queue_delete("logs")

        logger.info(trace_id, "agent", "second")
        assert logger.flush(timeout=30) is False, "not confirmed: not published"
        stats = logger.stats()
        assert (stats["published"], stats["spooled"]) == (1, 1)
        assert "NO_ROUTE" in stats["last_error"]

        # The journal segment held both records: both are replayed (the
        # first a second time: ids make that harmless).
        wait_for(lambda: logger.stats()["replayed"] == 2, timeout=30,
                 message="the spooled batch published to the queue declared again")
        assert host.ready("logs") == 1, "the replayed batch, in the queue made again"
    finally:
        host.delete()


def test_a_batch_given_back_more_often_than_the_delivery_limit_is_dead_lettered(
    app_factory, tmp_path, trace_id
):
    """A message that every worker gives back (a process killed while it
    holds it: the broker gets it back unacknowledged) goes round at most
    ``CELERY_DELIVERY_LIMIT`` times more, then waits in ``logs.rejected``
    instead of looping. No worker on this virtual host: the test takes the
    batch and gives it back itself, the way a dying consumer does."""
    host = VirtualHost().create()
    try:
        logger = app_factory(CELERY=celery_config(host.url, tmp_path, delivery_limit=2)).extensions["execlog"]
        record = logger.info(trace_id, "agent", "poison")
        assert logger.flush(timeout=30) is True
        given_back = 0
        with kombu.Connection(host.url) as connection:
            channel = connection.default_channel
            while (message := channel.basic_get(queue="logs", no_ack=False)) is not None:
                channel.basic_reject(message.delivery_tag, requeue=True)
                given_back += 1
                assert given_back <= 20, "the batch loops in logs"
            assert given_back == 3, "the first delivery and the limit's 2 more"
            dead = wait_for(lambda: channel.basic_get(queue="logs.rejected", no_ack=False), timeout=30,
                            message="the batch in logs.rejected")
            assert dead.properties["application_headers"]["task"] == INSERT_BATCH_TASK
            assert record.id.replace("-", "") in dead.body
            channel.basic_ack(dead.delivery_tag)
    finally:
        host.delete()


def test_what_is_not_a_task_goes_to_logs_rejected_and_the_worker_goes_on(rabbit_app, rabbit_worker, vhost,
                                                                         log_table, trace_id):
    queue = kombu.Queue("logs", kombu.Exchange("logs", type="topic"), routing_key="logs")
    with kombu.Connection(vhost.url) as connection:
        producer = connection.Producer()
        producer.publish(b"{not json", routing_key="logs", exchange="", content_type="application/json",
                         content_encoding="utf-8", declare=[])
        producer.publish({"hello": "not a task"}, routing_key="logs", exchange="", declare=[])
        producer.publish([[2, []], {}, {}], routing_key="logs", exchange="",
                         headers={"task": "no.such.task", "id": "0190c1f4-0000-7000-8000-000000000001"},
                         declare=[])
    del queue

    wait_for(lambda: vhost.ready("logs.rejected") == 3, timeout=60,
             message="three items in logs.rejected")
    assert rabbit_worker.alive()
    logger = rabbit_app.extensions["execlog"]
    logger.info(trace_id, "agent", "after the garbage")
    assert logger.flush(timeout=30) is True
    log_table.wait_for_count(trace_id, 1)

    status = rabbit_app.test_cli_runner().invoke(args=["execlog", "status", "--json"])
    figures = json.loads(status.output)
    assert figures["queue_rejected"] == 3


def test_a_queue_left_classic_stops_the_worker_with_the_fix(
    database_url, app_factory, tmp_path: Path, trace_id
):
    host = VirtualHost().create()
    try:
        with kombu.Connection(host.url) as connection:  # what an earlier version left
            kombu.Queue("logs", kombu.Exchange("logs"), routing_key="logs",
                        durable=True)(connection.default_channel).declare()
        worker = worker_process(service_env(database_url, host.url, tmp_path / "w"), tmp_path / "worker.log",
                                name=f"classic-{os.getpid()}").start()
        assert worker.process.wait(timeout=60) == 78
        output = worker.output()
        assert "RabbitMQ refuses queue 'logs' as this app declares it (a quorum queue)" in output
        assert "rabbitmqctl delete_queue logs" in output and "CELERY_QUEUE_TYPE=classic" in output

        logger = app_factory(CELERY=celery_config(host.url, tmp_path / "p"),
                             EXECLOG_PROBE_INTERVAL=30).extensions["execlog"]
        logger.info(trace_id, "agent", "kept for later")
        assert logger.flush(timeout=30) is False
        assert logger.stats()["spooled"] == 1
        assert "RabbitMQ refuses queue 'logs'" in logger.stats()["last_error"]

        app = app_factory(CELERY=celery_config(host.url, tmp_path / "r"), API_READY_CACHE_SECONDS=0,
                          API_AUTH="token", API_TOKENS=["ready-reader:read"])
        answer = app.test_client().get("/readyz", headers={"Authorization": "Bearer ready-reader"})
        assert answer.status_code == 503
        broker = answer.json["checks"]["broker"]
        assert broker["ok"] is False and "RabbitMQ refuses queue 'logs'" in broker["error"]
        assert "CELERY_QUEUE_TYPE=classic" in broker["error"]
    finally:
        host.delete()


def test_delayed_delivery_is_set_up_through_the_first_node_that_answers(
    database_url, app_factory, tmp_path: Path, log_table, trace_id
):
    """A cluster URL whose first node is down: the worker sets native
    delayed delivery (retries with a countdown) up through the next node,
    trying the dead one once, and takes batches."""
    host = VirtualHost().create()
    try:
        dead_first = f"amqp://guest:guest@127.0.0.1:1/{host.name};{host.url}"
        worker = start_celery_worker(service_env(database_url, dead_first, tmp_path / "w"),
                                     tmp_path / "worker.log", name=f"failover-{os.getpid()}")
        try:
            logger = app_factory(CELERY=celery_config(host.url, tmp_path / "p")).extensions["execlog"]
            logger.info(trace_id, "agent", "through the second node")
            assert logger.flush(timeout=30) is True
            log_table.wait_for_count(trace_id, 1)
            wait_for(lambda: ("celery_delayed_delivery", "logs") in host.bindings(), timeout=30,
                     message="logs bound to the delayed delivery exchange")
            output = worker.output()
            assert output.count("delayed delivery not set up through amqp://guest:**@127.0.0.1:1/") == 1
            assert "Retrying delayed delivery setup" not in output
        finally:
            worker.stop()
    finally:
        host.delete()


def test_a_batch_whose_first_store_fails_is_retried_through_delayed_delivery_and_stored_once(
    app_factory, database_url, tmp_path: Path, trace_id
):
    """The worker's first store fails (its database does not exist yet, as in
    test_worker_retries on Redis). Its retry goes through RabbitMQ's delayed
    delivery, which takes whole seconds only (``int(countdown)`` >= 1): a
    sub-second countdown was refused there and the batch rejected, for good,
    into logs.rejected. Now the batch waits out its countdown and is stored
    once the database is there, exactly once; logs.rejected stays empty."""
    import re

    import sqlalchemy as sa
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.config import config_from_env

    from ..conftest import TEST_DB_NAME, admin_sql as admin

    outage_db = f"{TEST_DB_NAME}_rabbit_outage"

    admin(f'DROP DATABASE IF EXISTS "{outage_db}" WITH (FORCE)')
    missing = sa.make_url(database_url).set(database=outage_db).render_as_string(hide_password=False)
    host = VirtualHost().create()
    engine = sa.create_engine(missing, poolclass=sa.pool.NullPool)
    migrator = None
    try:
        # Sub-second backoff: every countdown would be below 1 s without the fix.
        env = service_env(missing, host.url, tmp_path / "w",
                          EXECLOG_RETRY_BACKOFF="0.2", EXECLOG_RETRY_BACKOFF_MAX="0.8")
        worker = start_celery_worker(env, tmp_path / "worker.log", name=f"retry-{os.getpid()}")
        try:
            wait_for(lambda: ("celery_delayed_delivery", "logs") in host.bindings(), timeout=30,
                     message="logs bound to the delayed delivery exchange")
            logger = app_factory(CELERY=celery_config(host.url, tmp_path / "p")).extensions["execlog"]
            sent = {logger.info(trace_id, "database", f"first store fails {i}").id for i in range(50)}
            assert logger.flush(timeout=30) is True
            worker.wait_for_output("retry 1 in", timeout=60)

            admin(f'CREATE DATABASE "{outage_db}"')
            migrator = create_app(config_from_env({"DATABASE_URL": missing,
                                                   "WEBAPP_VAR_DIR": str(tmp_path / "migrate")}))
            with migrator.app_context():
                upgrade()

            def stored() -> list[str]:
                with engine.connect() as connection:
                    return [str(row[0]) for row in connection.execute(
                        sa.text("SELECT id FROM execution_logs WHERE trace_id = :t"), {"t": trace_id})]

            wait_for(lambda: len(stored()) >= len(sent) or host.ready("logs.rejected"), timeout=60,
                     message="the batch stored after its retries (or rejected)")
            assert host.ready("logs.rejected") == 0, "nothing rejected"
            wait_for(lambda: host.queues()["logs"]["messages"] == 0, timeout=30,
                     message="the batch's message acknowledged")
            rows = stored()
            assert sorted(rows) == sorted(sent), "every record, once"
            output = worker.output()
            assert "countdown must be a positive number" not in output
            countdowns = re.findall(r"retry \d+ in (\S+) s", output)
            assert countdowns and all(value == "1.0" for value in countdowns), countdowns
            assert worker.alive()
        finally:
            worker.stop()
    finally:
        engine.dispose()
        if migrator is not None:
            with migrator.app_context():
                from webapp.extensions import db

                db.engine.dispose()
        host.delete()
        admin(f'DROP DATABASE IF EXISTS "{outage_db}" WITH (FORCE)')
