"""Broker, worker and database failures under a steady load: every record
log() returned is stored exactly once in the end."""

from __future__ import annotations

import os
import signal

import redis
import sqlalchemy as sa

from ..support.processes import children, start_celery_worker
from ..support.waiting import wait_for
from .conftest import worker_env
from .harness import SteadyLoad, assert_nothing_lost, new_trace


def test_redis_stopped_for_seconds_during_load_then_started_again(
    database_url, private_redis, producer_factory, engine_for, tmp_path
):
    worker = start_celery_worker(worker_env(database_url, private_redis.url, tmp_path / "w"),
                                 tmp_path / "worker.log", name="fault-redis")
    try:
        logger = producer_factory(database_url, private_redis.url).extensions["execlog"]
        trace = new_trace("redis")
        load = SteadyLoad(logger.info, trace, total=7000).start()
        load.wait_until_sent(1500)
        private_redis.stop()
        load.wait_until_sent(4500)  # about 3 s of load with no broker
        spooled_while_down = logger.stats()["spooled"]
        private_redis.start()
        load.join()
        logger.flush(timeout=30)

        assert_nothing_lost(engine_for(database_url), trace, load.sent, label="redis stopped")
        assert spooled_while_down > 0, "the outage was seen by the producer"
        assert logger.stats()["replayed"] >= spooled_while_down
        assert logger.stats()["dropped"] == 0
        assert worker.alive(), "the worker rode out the outage"
    finally:
        worker.stop()


def test_worker_killed_mid_batch_then_restarted(
    database_url, private_redis, producer_factory, engine_for, tmp_path
):
    env = worker_env(database_url, private_redis.url, tmp_path / "w")
    first = start_celery_worker(env, tmp_path / "worker1.log", name="fault-kill-1", concurrency=1)
    second = None
    try:
        logger = producer_factory(database_url, private_redis.url).extensions["execlog"]
        trace = new_trace("worker-kill")
        load = SteadyLoad(logger.info, trace, total=8000, burst=400, pause=0.1).start()
        load.wait_until_sent(2000)
        broker = redis.Redis.from_url(private_redis.url)

        def frozen_holding_batches() -> int:
            """Stopped (SIGSTOP) at a moment it holds unacknowledged batches."""
            first.freeze_group()
            held = broker.hlen("unacked")
            if not held:
                first.thaw_group()
            return held

        taken_by_the_dead = wait_for(frozen_holding_batches, timeout=30, interval=0.001,
                                     message="the worker to hold unacknowledged batches")
        first.kill_group()  # SIGKILL to the worker and its pool processes, where they stopped
        print(f"\nbatches the killed worker held: {taken_by_the_dead}")
        load.wait_until_sent(5000)
        second = start_celery_worker(env, tmp_path / "worker2.log", name="fault-kill-2")
        load.join()
        logger.flush(timeout=30)

        assert taken_by_the_dead > 0
        assert_nothing_lost(engine_for(database_url), trace, load.sent, timeout=180,
                            label="worker SIGKILL")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_postgresql_restarted_under_load(
    private_postgres, private_redis, producer_factory, engine_for, tmp_path
):
    env = worker_env(private_postgres.url, private_redis.url, tmp_path / "w")
    worker = start_celery_worker(env, tmp_path / "worker.log", name="fault-pg")
    try:
        logger = producer_factory(private_postgres.url, private_redis.url).extensions["execlog"]
        trace = new_trace("postgres")
        load = SteadyLoad(logger.info, trace, total=7000).start()
        load.wait_until_sent(1500)
        private_postgres.stop()
        load.wait_until_sent(3500)  # about 2 s of load with no database
        private_postgres.start()
        load.join()
        assert logger.flush(timeout=30) is True, "producers never notice the database"

        assert_nothing_lost(engine_for(private_postgres.url), trace, load.sent, label="postgres restart")
        assert "not stored" in worker.output(), "the worker retried"
    finally:
        worker.stop()


def test_with_the_database_fallback_a_broker_outage_is_bridged_by_one_connection(
    database_url, private_redis, producer_factory, engine_for, tmp_path
):
    name = f"fallback-{os.getpid()}"
    app = producer_factory(database_url, private_redis.url, EXECLOG_FALLBACK="database",
                           DB_APPLICATION_NAME=name)
    logger = app.extensions["execlog"]
    engine = engine_for(database_url)
    private_redis.stop()

    trace = new_trace("fallback")
    load = SteadyLoad(logger.info, trace, total=3000).start()
    load.join()
    assert logger.flush(timeout=30) is True, "the fallback counts as delivered"
    assert_nothing_lost(engine, trace, load.sent, label="broker down, database fallback")
    with engine.connect() as connection:
        held = connection.execute(sa.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name LIKE :n GROUP BY 1"), {"n": f"{name}%"}).all()
    assert held == [(f"{name}-execlog-fallback", 1)], "one connection of its own, none from the app's pool"
    stats = logger.stats()
    assert stats["fallback"] == 3000 and stats["spooled"] == 0

    private_redis.start()
    broker = redis.Redis.from_url(private_redis.url)

    def published_again() -> bool:
        logger.info(trace, "workflow", "after the outage")
        logger.flush(timeout=10)
        return broker.llen("logs") > 0

    wait_for(published_again, timeout=30, interval=0.5, message="batches to go through Celery again")
    assert logger.stats()["published"] > 0


def copies_waiting(engine: sa.engine.Engine) -> int:
    """Worker transactions whose ``COPY`` waits for a lock on the log table."""
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'COPY%'")).scalar_one()


def test_a_pool_process_killed_while_storing_batches_together_gives_each_back(
    database_url, private_redis, producer_factory, engine_for, tmp_path
):
    """The pool's job holds several batches (those that queued while the
    pool was busy): each is given back when its process dies, and stored
    once in the end."""
    engine = engine_for(database_url)
    logger = producer_factory(database_url, private_redis.url).extensions["execlog"]
    trace = new_trace("together")
    sent = []
    for batch in range(12):  # queued before the worker starts
        sent += [str(logger.info(trace, "agent", f"record {batch}.{i}").id) for i in range(50)]
        assert logger.flush(timeout=10)
    worker = None
    try:
        with engine.connect() as blocker:
            blocker.execute(sa.text("LOCK TABLE execution_logs IN SHARE MODE"))  # every COPY waits
            worker = start_celery_worker(worker_env(database_url, private_redis.url, tmp_path / "w"),
                                         tmp_path / "worker.log", name="fault-together", concurrency=1)
            killed: list[int] = []
            for kill in range(1, 3):
                # The first job holds the first batch; the second, the
                # batches that waited meanwhile (the prefetch: three).
                wait_for(lambda: copies_waiting(engine) >= kill, timeout=60,
                         message=f"job {kill} to wait for the lock")
                (child,) = wait_for(lambda: [p for p in children(worker.pid) if p not in killed],
                                    timeout=60, message="the pool's process")
                os.kill(child, signal.SIGKILL)
                killed.append(child)
            wait_for(lambda: [p for p in children(worker.pid) if p not in killed], timeout=60,
                     message="the worker to fork a new process")
            blocker.rollback()
        assert_nothing_lost(engine, trace, sent, timeout=120, label="pool process killed mid-job")
        lost = worker.output().count("Task handler raised error: WorkerLostError")
        assert lost > len(killed), f"a killed job held several batches ({lost} given back by 2 kills)"
    finally:
        if worker is not None:
            worker.stop()
