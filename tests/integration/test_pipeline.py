"""The whole pipeline on real services: log() -> buffer -> Celery over Redis ->
the worker -> PostgreSQL."""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from webapp.execlog import LogCategory, LogLevel
from webapp.execlog.record import WIRE_VERSION
from webapp.execlog.sinks import INSERT_BATCH_TASK, CelerySink

from ..support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")


def test_8_threads_x_2000_records_land_exactly_once_in_time_order(app, log_table):
    logger = app.extensions["execlog"]
    traces = [f"load-{n}-{uuid.uuid4()}" for n in range(8)]
    sent: dict[str, list[str]] = {trace: [] for trace in traces}

    def produce(trace: str) -> None:
        for i in range(2000):
            record = logger.log(trace, LogLevel.INFO, LogCategory.AGENT, f"record {i}",
                                step="load", details={"seq": i})
            sent[trace].append(record.id)

    threads = [threading.Thread(target=produce, args=(trace,)) for trace in traces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logger.flush(timeout=60) is True

    wait_for(lambda: len(log_table.ids(traces)) >= 16_000, timeout=120, message="16,000 rows")
    stored = log_table.ids(traces)
    all_sent = [record_id for ids in sent.values() for record_id in ids]
    print(f"sent={len(all_sent)} stored={len(stored)} distinct={len(set(stored))}")
    assert len(stored) == 16_000
    assert set(stored) == set(all_sent)
    for trace in traces:
        rows = log_table.rows(trace)
        assert [row["details"]["seq"] for row in rows] == list(range(2000))
        assert [str(row["id"]) for row in rows] == sent[trace]


def test_a_batch_delivered_twice_is_stored_once(app, log_table, trace_id):
    logger = app.extensions["execlog"]
    rows = [logger.info(trace_id, "workflow", f"twice {i}").to_wire() for i in range(20)]
    logger.flush()  # the logger ships them once ...
    sink = CelerySink(app.extensions["celery"])
    sink.send(rows)  # ... and the same batch goes again, as after a redelivery
    sink.send(rows[:7])

    log_table.wait_for_count(trace_id, 20)
    wait_for(lambda: _queue_drained(app), timeout=30, message="the logs queue to drain")
    assert log_table.count(trace_id) == 20


def _queue_drained(app) -> bool:
    from webapp.execlog.monitoring import queue_length

    return queue_length(app.extensions["celery"], "logs") == 0


def test_one_bad_record_does_not_take_its_batch_down(app, log_table, trace_id):
    logger = app.extensions["execlog"]
    good = [logger.info(trace_id, "agent", f"good {i}").to_wire() for i in range(10)]
    logger.flush()
    marker = uuid.uuid4().hex
    not_a_record = ["not", "a", "record", marker]
    refused_by_postgres = list(good[0])
    refused_by_postgres[0] = uuid.uuid4().hex
    refused_by_postgres[5] = f"bad json {marker}"
    refused_by_postgres[10] = "{this is not json"
    too_deep_for_postgres = list(good[0])
    too_deep_for_postgres[0] = uuid.uuid4().hex
    too_deep_for_postgres[5] = f"too deep {marker}"
    too_deep_for_postgres[10] = '{"d":' * 20_000 + "1" + "}" * 20_000
    more_good = [logger.info(trace_id, "agent", f"more {i}").to_wire() for i in range(5)]
    batch = (good[:5] + [not_a_record] + more_good[:3] + [refused_by_postgres]
             + more_good[3:] + [too_deep_for_postgres])
    # Bypass the logger (which never produces such rows) to test the worker.
    CelerySink(app.extensions["celery"]).send(batch)

    rows = log_table.wait_for_count(trace_id, 15)
    assert sorted(row["message"] for row in rows) == sorted(
        [f"good {i}" for i in range(10)] + [f"more {i}" for i in range(5)]
    )
    dead = wait_for(lambda: len(log_table.dead_letters(marker)) == 3 and log_table.dead_letters(marker),
                    timeout=30, message="three dead letters")
    reasons = sorted(d["reason"] for d in dead)
    assert "a row must be a list of 12 fields" in reasons
    assert any("invalid input syntax for type json" in reason for reason in reasons)
    assert any("stack depth limit exceeded" in reason for reason in reasons)


def test_a_message_that_is_not_a_batch_is_dead_lettered_and_the_worker_goes_on(app, log_table, trace_id):
    celery = app.extensions["celery"]
    marker = uuid.uuid4().hex
    celery.send_task(INSERT_BATCH_TASK, args=("garbage", marker), queue="logs")
    celery.send_task(INSERT_BATCH_TASK, args=(WIRE_VERSION, {"rows": marker}), queue="logs")
    celery.send_task(INSERT_BATCH_TASK, kwargs={"unexpected": marker}, queue="logs")

    dead = wait_for(lambda: len(log_table.dead_letters(marker)) == 3 and log_table.dead_letters(marker),
                    timeout=30, message="three dead-lettered messages")
    assert {d["source"] for d in dead} == {"message"}
    assert sorted(d["reason"] for d in dead) == [
        "expected the arguments (version, rows)",
        "rows must be a list",
        "unsupported batch version 'garbage'",
    ]
    logger = app.extensions["execlog"]
    logger.info(trace_id, "api", "still working")
    logger.flush()
    log_table.wait_for_count(trace_id, 1)


def test_the_producer_holds_no_database_connection_while_logging(app_factory, db_engine, log_table, trace_id):
    name = f"producer-{uuid.uuid4().hex[:8]}"
    app = app_factory(DB_APPLICATION_NAME=name)
    logger = app.extensions["execlog"]

    def backends() -> int:
        with db_engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :n"),
                {"n": f"{name}%"},
            ).scalar_one()

    before = backends()
    for i in range(10_000):
        logger.info(trace_id, "database", f"record {i}")
    assert logger.flush(timeout=60) is True
    log_table.wait_for_count(trace_id, 10_000, timeout=120)
    after = backends()
    print(f"producer backends before={before} after={after}")
    assert before == 0 and after == 0
