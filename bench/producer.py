"""What shipping log records costs the producing process, against its floor and its peers.

    .venv/bin/python bench/producer.py [--records 40000] [--repeats 3] [--json out.json]

Every case sends the same records (a short message, six ``details`` keys,
the fields of an execution log record) from one thread to Redis, and no
worker consumes them; each is measured as the CPU of its whole process (the
calling thread and any shipping thread) from the first record until the
last batch was acknowledged by Redis, divided by the records. The cases:

* **the floor**: the records as plain lists, 50 per message encoded with
  orjson, one redis-py ``LPUSH`` each, no Celery: what shipping to Redis can
  possibly cost;
* **deque only**: each record built and appended to a deque, not shipped;
* **webapp, batches of 50**: ``execution_logger.info`` with
  ``EXECLOG_MAX_BATCH_SIZE=50``, every message 50 records,
  ``EXECLOG_DURABILITY=memory`` (what shipping alone costs);
* **webapp, saturated**: the same with the default batch settings, so that the
  batches grow while the flusher is behind (the caller logs as fast as it can);
* **webapp, disk durability**: the default ``EXECLOG_DURABILITY=disk``
  (every record journaled at ``log()``), batches of 50;
* **webapp on RabbitMQ**: batches of 50 to the quorum queue ``logs`` of a
  virtual host of its own on the machine's RabbitMQ
  (``BENCH_RABBITMQ_URL``), each publish confirmed by the broker;
* **by hand**: the records as dicts, 50 per ``Celery.send_task``, the
  standard library's JSON (what the first version did);
* **OpenTelemetry SDK** (peer): the logging handler and ``BatchLogRecordProcessor``
  with batches of 50, an exporter that ``LPUSH``es orjson;
* **stdlib QueueHandler** (peer): ``logging.handlers.QueueHandler`` and a
  ``QueueListener`` whose handler ships 50 records per orjson ``LPUSH``.

Each case runs in a process of its own (``--case``), what it loaded frozen
out of the garbage collector's scans (``gc.freeze()``, as the project's
gunicorn and Celery hooks do); the cases take turns,
``--repeats`` times, and each figure is the median. Redis: database 12 on
localhost (``BENCH_PRODUCER_REDIS_URL``), a list of the run's own, deleted
after each case.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import logging.handlers
import os
import queue as queue_module
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 50
DETAILS = {"tool_name": "catalog.search", "query": "python basics", "hits": 3, "page": 1,
           "lang": "en", "cached": False}
REDIS_URL = os.environ.get("BENCH_PRODUCER_REDIS_URL", "redis://127.0.0.1:6379/12")
#: The machine's RabbitMQ (a virtual host per run is made on it with rabbitmqctl).
RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


def _record_list(stamp: Any, trace: str) -> list[Any]:
    from webapp.execlog.ids import uuid7_hex

    created_ns, counter = stamp.next()
    return [uuid7_hex(created_ns, counter), created_ns // 1000, trace, "info", "tool",
            "catalog searched", "design", "curriculum", None, None, DETAILS.copy(), None, None]


# Each case prepares what it needs (imports, connections, warm-up) and
# returns what is timed: a function that sends ``records`` records and
# returns once the last batch is with Redis.

def case_floor(records: int, key: str) -> Callable[[], None]:
    import orjson
    import redis

    from webapp.execlog.ids import MonotonicStamp

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()

    def run() -> None:
        stamp, trace, batch = MonotonicStamp(), str(uuid.uuid4()), []
        for _ in range(records):
            batch.append(_record_list(stamp, trace))
            if len(batch) == BATCH:
                client.lpush(key, orjson.dumps(batch))
                batch = []
        if batch:
            client.lpush(key, orjson.dumps(batch))

    return run


def case_deque(records: int, key: str) -> Callable[[], None]:
    from webapp.execlog.ids import MonotonicStamp

    def run() -> None:
        stamp, trace, buffer = MonotonicStamp(), str(uuid.uuid4()), deque()
        for _ in range(records):
            buffer.append(_record_list(stamp, trace))

    return run


def _webapp(records: int, key: str, broker: str = REDIS_URL, queue: str | None = None,
            **settings: Any) -> Callable[[], dict[str, Any]]:
    from webapp import create_app
    from webapp.config import config_from_env

    config = config_from_env({"CELERY_BROKER_URL": broker, "WEBAPP_VAR_DIR": tempfile.mkdtemp()})
    config.update(EXECLOG_QUEUE=queue or key, EXECLOG_MAX_BUFFER=1_000_000, **settings)
    logger = create_app(config).extensions["execlog"]
    for _ in range(2 * BATCH):  # the flusher thread and the broker connection
        logger.info("warm-up", "tool", "warm-up", details=DETAILS)
    logger.flush(timeout=60)

    def run() -> dict[str, Any]:
        trace = str(uuid.uuid4())
        log = logger.info
        for _ in range(records):
            log(trace, "tool", "catalog searched", agent_name="curriculum", step="design", details=DETAILS)
        if not logger.flush(timeout=300):
            raise RuntimeError("not everything was published")
        stats = logger.stats()
        return {"batch_cpu_p99_us": stats["flusher_batch_cpu_p99_us"],
                "batch_records_p50": stats["batch_records_p50"]}

    return run


def case_webapp_50(records: int, key: str) -> Callable[[], dict[str, Any]]:
    return _webapp(records, key, EXECLOG_MAX_BATCH_SIZE=BATCH, EXECLOG_DURABILITY="memory")


def case_webapp_saturated(records: int, key: str) -> Callable[[], dict[str, Any]]:
    return _webapp(records, key, EXECLOG_DURABILITY="memory")


def case_webapp_disk(records: int, key: str) -> Callable[[], dict[str, Any]]:
    return _webapp(records, key, EXECLOG_MAX_BATCH_SIZE=BATCH, EXECLOG_DURABILITY="disk")


def case_webapp_50_rabbitmq(records: int, key: str) -> Callable[[], dict[str, Any]]:
    """As webapp-50, on RabbitMQ: the quorum queue ``logs`` of a virtual
    host of the run's own, every batch confirmed by the broker."""
    vhost = rabbitmq_vhost(key)
    return _webapp(records, key, broker=f"{RABBITMQ_URL}/{vhost}", queue="logs",
                   EXECLOG_MAX_BATCH_SIZE=BATCH, EXECLOG_DURABILITY="memory")


def rabbitmq_vhost(key: str) -> str:
    """A virtual host made for this process, deleted when it exits."""
    import atexit

    vhost = f"bench-{key}"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)
    atexit.register(subprocess.run, ["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)
    return vhost


def case_by_hand(records: int, key: str) -> Callable[[], None]:
    from celery import Celery

    from webapp.execlog.fields import FIELDS
    from webapp.execlog.ids import MonotonicStamp
    from webapp.names import INSERT_BATCH_TASK

    celery = Celery("bench", broker=REDIS_URL)
    celery.conf.update(task_serializer="json", broker_transport_options={"socket_timeout": 10})
    names = [f.name for f in FIELDS]
    celery.send_task(INSERT_BATCH_TASK, args=([],), queue=key, ignore_result=True)  # connect

    def run() -> None:
        stamp, trace, batch = MonotonicStamp(), str(uuid.uuid4()), []
        for _ in range(records):
            batch.append(dict(zip(names, _record_list(stamp, trace))))
            if len(batch) == BATCH:
                celery.send_task(INSERT_BATCH_TASK, args=(batch,), queue=key, ignore_result=True)
                batch = []

    return run


class _RedisBatches:
    """Ships encoded records to Redis, 50 per LPUSH (the peers' exporter)."""

    def __init__(self, key: str) -> None:
        import orjson
        import redis

        self.client = redis.Redis.from_url(REDIS_URL)
        self.client.ping()
        self.key = key
        self.dumps = orjson.dumps

    def send(self, items: list[Any]) -> None:
        self.client.lpush(self.key, self.dumps(items))


def case_otel(records: int, key: str) -> Callable[[], None]:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult,
    )

    shipper = _RedisBatches(key)

    class RedisExporter(LogRecordExporter):
        def export(self, batch: Any) -> Any:
            shipper.send([{"body": data.log_record.body, "severity": data.log_record.severity_text,
                           "time": data.log_record.timestamp,
                           "attributes": dict(data.log_record.attributes or {})} for data in batch])
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(
        RedisExporter(), max_export_batch_size=BATCH, max_queue_size=1_000_000))
    log = logging.getLogger(f"bench-otel-{key}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(logger_provider=provider))
    log.info("warm-up", extra={"trace_id": "warm-up"})
    provider.force_flush()

    def run() -> None:
        trace = str(uuid.uuid4())
        for _ in range(records):
            log.info("catalog searched", extra={"trace_id": trace, "category": "tool", "step": "design",
                                                "agent_name": "curriculum", **DETAILS})
        provider.force_flush()

    return run


def case_queue_handler(records: int, key: str) -> Callable[[], None]:
    shipper = _RedisBatches(key)

    class BatchingHandler(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.batch: list[dict[str, Any]] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.batch.append({"message": record.getMessage(), "level": record.levelname,
                               "time": record.created, "trace_id": getattr(record, "trace_id", None),
                               "category": "tool", "step": "design", "agent_name": "curriculum",
                               "details": getattr(record, "details", None)})
            if len(self.batch) == BATCH:
                self.flush()

        def flush(self) -> None:
            if self.batch:
                shipper.send(self.batch)
                self.batch = []

    buffer: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
    handler = BatchingHandler()
    log = logging.getLogger(f"bench-queue-{key}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(logging.handlers.QueueHandler(buffer))

    def run() -> None:
        listener = logging.handlers.QueueListener(buffer, handler)
        listener.start()
        trace = str(uuid.uuid4())
        for _ in range(records):
            log.info("catalog searched", extra={"trace_id": trace, "details": DETAILS})
        listener.stop()  # returns once the listener has handled every record
        handler.flush()

    return run


CASES = {
    "floor": ("the floor: orjson + LPUSH, 50 a message, no Celery", case_floor),
    "deque": ("build the record, append to a deque (no shipping)", case_deque),
    "webapp-50": ("webapp celery (memory), batches of 50", case_webapp_50),
    "webapp-saturated": ("webapp celery (memory), saturated: batches grow", case_webapp_saturated),
    "webapp-disk": ("webapp celery (disk), batches of 50", case_webapp_disk),
    "webapp-50-rabbitmq": ("webapp celery (memory), batches of 50, RabbitMQ (confirmed)",
                           case_webapp_50_rabbitmq),
    "by-hand": ("by hand: dicts, 50 per send_task, stdlib json", case_by_hand),
    "otel": ("peer: OpenTelemetry SDK, BatchLogRecordProcessor (50), orjson LPUSH", case_otel),
    "queue-handler": ("peer: stdlib QueueHandler + QueueListener, 50 per orjson LPUSH", case_queue_handler),
}


def run_case(name: str, records: int) -> dict[str, Any]:
    """One case in this process: its CPU per record (and what it reports)."""
    import redis

    key = f"bench-producer-{uuid.uuid4().hex[:8]}"
    run = CASES[name][1](records, key)
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(key)  # what the warm-up sent
    # As the project's gunicorn and Celery processes do once the app is
    # loaded: what was loaded leaves the garbage collector's scans.
    gc.freeze()
    started = time.process_time()
    extra = run() or {}
    cpu = time.process_time() - started
    client.delete(key)
    return {"case": name, "records": records, "cpu_us_per_record": cpu / records * 1e6, **extra}


def measure(records: int, repeats: int, cases: list[str] | None = None,
            redis_url: str = REDIS_URL) -> list[dict[str, Any]]:
    """Every case ``repeats`` times, taking turns, each in a new process;
    the medians, with each case's ratio to the floor."""
    names = cases or list(CASES)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            done = subprocess.run([sys.executable, __file__, "--case", name, "--records", str(records)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "BENCH_PRODUCER_REDIS_URL": redis_url})
            if done.returncode != 0:
                raise RuntimeError(f"case {name} failed: {done.stderr[-3000:]}")
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for name in names:
        values = [run["cpu_us_per_record"] for run in runs[name]]
        row: dict[str, Any] = {"case": name, "title": CASES[name][0],
                               "cpu_us_per_record": statistics.median(values),
                               "runs_us": [round(v, 2) for v in values]}
        for key in ("batch_cpu_p99_us", "batch_records_p50", "batches"):
            found = [run[key] for run in runs[name] if run.get(key) is not None]
            row[key] = statistics.median(found) if found else None
        rows.append(row)
    floor = next((row["cpu_us_per_record"] for row in rows if row["case"] == "floor"), None)
    for row in rows:
        row["ratio_to_floor"] = row["cpu_us_per_record"] / floor if floor else None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", choices=list(CASES), help="run one case here and print its figures")
    parser.add_argument("--cases", help="comma-separated cases (default: all)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.records)))
        return
    rows = measure(args.records, args.repeats, args.cases.split(",") if args.cases else None)
    print(f"producer CPU per record, {args.records:,} records a run, medians of {args.repeats} "
          f"interleaved runs, {os.cpu_count()} CPUs")
    for row in rows:
        extra = ""
        if row["batch_records_p50"] is not None:
            extra = (f"  (batch p50 {row['batch_records_p50']:.0f} records, "
                     f"batch CPU p99 {row['batch_cpu_p99_us']:.0f} us)")
        ratio = "" if row["ratio_to_floor"] is None else f"  x{row['ratio_to_floor']:.2f}"
        print(f"  {row['title']:72} {row['cpu_us_per_record']:7.2f} us{ratio}{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
