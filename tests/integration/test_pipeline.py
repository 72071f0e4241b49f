"""The whole pipeline on real services: log() -> buffer -> Celery over Redis ->
the worker -> PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import sqlalchemy as sa

from webapp.execlog import LogCategory, LogLevel
from webapp.execlog.sinks import INSERT_BATCH_TASK, CelerySink
from webapp.execlog.wire import WIRE_VERSION

from ..support.records import make_rows
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
    rows = [logger.info(trace_id, "workflow", f"twice {i}").wire_bytes() for i in range(20)]
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
    # Rows of the right types whose values PostgreSQL refuses while it copies.
    bad_id = [f"not-a-uuid-{marker}", *good[0][1:5], f"bad id {marker}", *good[0][6:]]
    bad_level = [uuid.uuid4().hex, *good[0][1:3], "loud", good[0][4], f"loud {marker}", *good[0][6:]]
    lone_surrogate = [uuid.uuid4().hex, *good[0][1:5], "half \ud800 a pair", *good[0][6:]]
    more_good = [logger.info(trace_id, "agent", f"more {i}").to_wire() for i in range(5)]
    batch = (good[:5] + [not_a_record] + more_good[:3] + [bad_id] + [lone_surrogate]
             + more_good[3:] + [bad_level])
    # Bypass the logger (which never produces such rows) to test the worker;
    # the standard library writes the lone surrogate as "\\ud800", as a
    # producer of another language might.
    CelerySink(app.extensions["celery"]).send([json.dumps(row).encode() for row in batch])

    rows = log_table.wait_for_count(trace_id, 16)
    assert sorted(row["message"] for row in rows) == sorted(
        [f"good {i}" for i in range(10)] + [f"more {i}" for i in range(5)] + ["half \ufffd a pair"]
    )
    dead = wait_for(lambda: len(log_table.dead_letters(marker)) == 3 and log_table.dead_letters(marker),
                    timeout=30, message="three dead letters")
    reasons = sorted(d["reason"] for d in dead)
    assert "a row must be a list of 13 fields" in reasons
    assert any("invalid input syntax for type uuid" in reason for reason in reasons)
    assert any("ck_execution_logs_level_known" in reason for reason in reasons)
    assert {d["trace_id"] for d in dead if d["reason"] != "a row must be a list of 13 fields"} == {trace_id}


def test_a_version_1_batch_is_stored_and_its_bad_rows_dead_lettered(app, log_table, trace_id):
    """Batches of the layout before ``attempt`` may wait in queues and spools."""
    marker = uuid.uuid4().hex
    v1 = [row[:10] + ['{"n":%d}' % i, None] for i, row in enumerate(make_rows(trace_id, 4, "old"))]
    too_deep_for_postgres = v1[0][:5] + [f"too deep {marker}"] + v1[0][6:10] + [
        '{"d":' * 20_000 + "1" + "}" * 20_000, None]
    too_deep_for_postgres[0] = uuid.uuid4().hex
    not_json = v1[0][:5] + [f"not json {marker}"] + v1[0][6:10] + ["{this is not json", None]
    not_json[0] = uuid.uuid4().hex
    app.extensions["celery"].send_task(INSERT_BATCH_TASK, args=(1, v1 + [too_deep_for_postgres, not_json]),
                                       queue="logs")

    rows = log_table.wait_for_count(trace_id, 4)
    assert [row["details"] for row in rows] == [{"n": i} for i in range(4)]
    assert all(row["attempt"] is None for row in rows)
    dead = wait_for(lambda: len(log_table.dead_letters(marker)) == 2 and log_table.dead_letters(marker),
                    timeout=30, message="two dead letters")
    reasons = sorted(d["reason"] for d in dead)
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
