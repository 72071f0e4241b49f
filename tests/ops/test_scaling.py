"""Scaling out on one machine: two workers (different node names, started by
scripts/start_celery_worker.sh) consume `logs` side by side, fed by two
producer processes that know nothing but the broker URL."""

from __future__ import annotations

import os
import re
import sys
import uuid

from ..conftest import service_env
from ..support.processes import ROOT, ManagedProcess
from ..support.waiting import wait_for

PER_PRODUCER = 10_000
#: A batch stored alone, or with the others its worker held (``together``).
SUCCEEDED = re.compile(r"Task execlog\.insert_batch\[[0-9a-f-]+\] succeeded in [0-9.e-]+s: "
                       r"\{'received': (\d+), ('inserted': \d+, 'dead': 0|'together': \d+)\}")


def start_worker(name: str, database_url: str, broker: str, tmp_path) -> ManagedProcess:
    env = service_env(database_url, broker, tmp_path / name, PYTHON=sys.executable,
                      CELERY_WORKER_NAME=f"{name}@%h", CELERY_QUEUES="logs", CELERY_CONCURRENCY="1")
    return ManagedProcess(name, [str(ROOT / "scripts" / "start_celery_worker.sh")], env,
                          tmp_path / f"{name}.log").start()


def start_producer(trace_id: str, broker: str, tmp_path) -> ManagedProcess:
    env = {"PATH": os.environ["PATH"], "CELERY_BROKER_URL": broker,
           "WEBAPP_VAR_DIR": str(tmp_path / trace_id), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "tests.ops.producer", trace_id, str(PER_PRODUCER),
            str(tmp_path / f"{trace_id}.ids")]
    return ManagedProcess(trace_id, argv, env, tmp_path / f"{trace_id}.log").start()


def test_two_workers_share_the_logs_queue_with_no_record_lost_or_doubled(
    database_url, spare_broker, log_table, tmp_path
):
    workers = [start_worker(name, database_url, spare_broker, tmp_path) for name in ("a", "b")]
    producers = []
    try:
        for worker in workers:
            worker.wait_for_output(" ready.", timeout=60)
        traces = [f"scale-{n}-{uuid.uuid4()}" for n in range(2)]
        producers = [start_producer(trace, spare_broker, tmp_path) for trace in traces]
        for producer in producers:
            wait_for(lambda: not producer.alive(), timeout=120, message=f"{producer.name} to finish")
            assert producer.process.returncode == 0, producer.output()
        sent = [i for trace in traces for i in (tmp_path / f"{trace}.ids").read_text().split()]

        wait_for(lambda: len(log_table.ids(traces)) >= len(sent), timeout=120,
                 message=f"{len(sent)} rows from two workers")
        stored = log_table.ids(traces)
        inserted_by = {worker.name: [int(m[1]) for m in SUCCEEDED.finditer(worker.output())]
                       for worker in workers}
    finally:
        for process in producers + workers:
            process.stop()

    print({name: (len(batches), sum(batches)) for name, batches in inserted_by.items()})
    assert len(sent) == len(set(sent)) == 2 * PER_PRODUCER
    assert set(sent) - set(stored) == set(), "missing"
    assert len(stored) - len(set(stored)) == 0, "duplicates"
    assert len(stored) == len(sent)
    assert all(inserted_by[name] for name in ("a", "b")), "each worker took batches"
    assert sum(map(sum, inserted_by.values())) == len(sent)
