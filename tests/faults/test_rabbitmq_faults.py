"""The fault scenarios of test_service_faults.py on RabbitMQ: a worker
killed mid-batch, and the broker stopped and started again under load.
Every record log() returned is stored exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..support.processes import start_celery_worker
from ..support.rabbitmq import PrivateRabbitMQ, VirtualHost
from ..support.waiting import wait_for
from .conftest import worker_env
from .harness import SteadyLoad, assert_nothing_lost, new_trace


@pytest.fixture
def vhost() -> Iterator[VirtualHost]:
    host = VirtualHost().create()
    yield host
    host.delete()


@pytest.fixture
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    broker = PrivateRabbitMQ().start()
    yield broker
    broker.remove()


def test_worker_killed_mid_batch_then_restarted(database_url, vhost, producer_factory, engine_for, tmp_path):
    env = worker_env(database_url, vhost.url, tmp_path / "w")
    first = start_celery_worker(env, tmp_path / "worker1.log", name="rabbit-kill-1", concurrency=1)
    second = None
    try:
        logger = producer_factory(database_url, vhost.url).extensions["execlog"]
        trace = new_trace("rabbit-worker-kill")
        load = SteadyLoad(logger.info, trace, total=8000, burst=400, pause=0.1).start()
        load.wait_until_sent(2000)

        first.freeze_group()  # SIGSTOP, in the middle of whatever it was doing
        # rabbitmqctl's figures are refreshed every 5 s: they say what it held.
        taken_by_the_dead = wait_for(lambda: vhost.queues()["logs"]["messages_unacknowledged"],
                                     timeout=30, interval=1,
                                     message="the stopped worker's unacknowledged batches")
        first.kill_group()  # the broker hands its batches out again once the connection is gone
        print(f"\nbatches the killed worker held: {taken_by_the_dead}")
        load.wait_until_sent(5000)
        second = start_celery_worker(env, tmp_path / "worker2.log", name="rabbit-kill-2")
        load.join()
        assert logger.flush(timeout=60) is True
        assert_nothing_lost(engine_for(database_url), trace, load.sent, timeout=120,
                            label="rabbitmq, worker SIGKILL")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_rabbitmq_stopped_for_seconds_during_load_then_started_again(
    database_url, private_rabbitmq, producer_factory, engine_for, tmp_path
):
    worker = start_celery_worker(worker_env(database_url, private_rabbitmq.url, tmp_path / "w"),
                                 tmp_path / "worker.log", name="rabbit-outage")
    try:
        logger = producer_factory(database_url, private_rabbitmq.url).extensions["execlog"]
        trace = new_trace("rabbit-outage")
        load = SteadyLoad(logger.info, trace, total=7000).start()
        load.wait_until_sent(1500)
        private_rabbitmq.stop()
        load.wait_until_sent(4500)  # about 3 s of load with no broker
        spooled_while_down = logger.stats()["spooled"]
        private_rabbitmq.start()
        load.join()
        logger.flush(timeout=60)

        assert_nothing_lost(engine_for(database_url), trace, load.sent, timeout=180,
                            label="rabbitmq stopped")
        assert spooled_while_down > 0, "the outage was seen by the producer"
        assert logger.stats()["dropped"] == 0
        assert worker.alive(), "the worker rode out the outage"
    finally:
        worker.stop()
