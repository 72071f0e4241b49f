"""A backlog on the ``logs`` queue: a worker stores the batches that waited
while its pool was busy together, in one transaction, each record once, and
still tells apart the messages that are not batches."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid

import pytest
import redis

from webapp.config import celery_config
from webapp.names import BATCH_CONTENT_TYPE, BATCH_SERIALIZER, INSERT_BATCH_TASK

from ..api.test_metrics import samples, value
from ..conftest import service_env
from ..support.processes import free_port, start_celery_worker
from ..support.waiting import wait_for

BATCHES = 24
RECORDS = 50


def not_json_message(marker: str) -> bytes:
    """An ``insert_batch`` message of the batch serializer whose body is not JSON."""
    return json.dumps({
        "body": base64.b64encode(f"not json {marker}".encode()).decode(),
        "content-type": BATCH_CONTENT_TYPE,
        "content-encoding": "utf-8",
        "headers": {"lang": "py", "task": INSERT_BATCH_TASK, "id": str(uuid.uuid4()), "argsrepr": marker},
        "properties": {"body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
                       "delivery_info": {"exchange": "", "routing_key": "logs"}},
    }).encode()


def test_a_backlog_is_stored_together_each_record_once_and_bad_messages_apart(
    app_factory, database_url, spare_broker, log_table, tmp_path, trace_id
):
    producer = app_factory(CELERY=celery_config(spare_broker, tmp_path))
    logger = producer.extensions["execlog"]
    celery = producer.extensions["celery"]
    marker = uuid.uuid4().hex
    ids = []
    for batch in range(BATCHES):  # queued while no worker runs
        ids += [str(logger.info(trace_id, "agent", f"record {batch}.{i}").id) for i in range(RECORDS)]
        assert logger.flush(timeout=10)
        if batch in (5, 15):
            celery.send_task(INSERT_BATCH_TASK, args=("garbage", marker), queue="logs",
                             serializer=BATCH_SERIALIZER)
        if batch == 10:
            redis.Redis.from_url(spare_broker).lpush("logs", not_json_message(marker))

    port = free_port()
    env = service_env(database_url, spare_broker, tmp_path / "worker-var",
                      CELERY_METRICS_BIND=f"127.0.0.1:{port}",
                      PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"))
    worker = start_celery_worker(env, tmp_path / "worker.log", name=f"together-{marker[:6]}", concurrency=1)
    try:
        log_table.wait_for_count(trace_id, len(ids))
        dead = wait_for(lambda: len(log_table.dead_letters(marker)) == 3 and log_table.dead_letters(marker),
                        timeout=30, message="the three messages that are not batches")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            found = samples(answer.read().decode())
    finally:
        worker.stop()

    stored = [str(row["id"]) for row in log_table.rows(trace_id)]
    assert sorted(stored) == sorted(ids), "every record, each once"
    reasons = sorted(d["reason"] for d in dead)
    assert reasons[0].startswith("body cannot be decoded: ")
    assert reasons[1:] == ["unsupported batch version 'garbage'"] * 2
    batches = value(found, "execlog_worker_batches_per_store_sum")
    stores = value(found, "execlog_worker_batches_per_store_count")
    assert batches >= BATCHES
    assert stores < batches, "some transactions stored several batches"
    assert value(found, "execlog_worker_records_total", result="inserted") == len(ids)
    assert "WorkerLostError" not in worker.output() and "Traceback" not in worker.output()


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_backlog_is_stored_once_by_a_worker_whose_pool_does_not_fork(
    app_factory, database_url, spare_broker, log_table, tmp_path, trace_id, pool
):
    """The strategy's callbacks run inside ``apply_async`` (solo) or on the
    pool's threads (threads): the same backlog, each record once."""
    logger = app_factory(CELERY=celery_config(spare_broker, tmp_path)).extensions["execlog"]
    ids = []
    for batch in range(12):
        ids += [str(logger.info(trace_id, "agent", f"record {batch}.{i}").id) for i in range(RECORDS)]
        assert logger.flush(timeout=10)
    env = service_env(database_url, spare_broker, tmp_path / "worker-var")
    worker = start_celery_worker(env, tmp_path / "worker.log", name=f"{pool}-{uuid.uuid4().hex[:6]}",
                                 concurrency=2, extra=["--pool", pool])
    try:
        log_table.wait_for_count(trace_id, len(ids))
    finally:
        worker.stop()
    assert sorted(str(row["id"]) for row in log_table.rows(trace_id)) == sorted(ids)
    assert "Traceback" not in worker.output()
