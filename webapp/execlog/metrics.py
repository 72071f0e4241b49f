"""Prometheus metrics of the execution log, and the calls that count them.

The logger (its flusher, the spool) and the Celery task that stores batches
call the ``count_*`` / ``observe_*`` / ``set_*`` functions here at a few
points. With ``PROMETHEUS_MULTIPROC_DIR`` set (see :mod:`webapp.metrics`),
every process's values are read together.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "execlog_records", "Log records by what happened to them: published (to the broker or, for the thread "
    "back end, the database), spooled, replayed (from the spool), fallback (inserted while the broker was "
    "down), dropped", ["outcome"])
BATCHES = Counter("execlog_batches", "Batches published")
BATCH_RECORDS = Histogram("execlog_batch_records", "Records per published batch",
                          buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000))
PUBLISH_SECONDS = Histogram("execlog_publish_seconds", "Time to publish one batch (the flush's hand-off "
                            "to the broker)", buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5, 1, 2.5, 5, 10))
FLUSHER_CPU = Counter("execlog_flusher_cpu_seconds", "CPU time the logger's flusher threads spent "
                      "shipping (encoding, publishing, spooling): logging's cost to the process, "
                      "besides the log() calls themselves")
BUFFERED = Gauge("execlog_buffered_records", "Records waiting in memory to be shipped, in live processes",
                 multiprocess_mode="livesum")
SPOOL_BYTES = Gauge("execlog_spool_bytes", "What the host's spool directory holds (segments at their "
                    "allocated size, set-aside lines)", multiprocess_mode="max")
SPOOL_FULL = Gauge("execlog_spool_full", "1 while the spool is at EXECLOG_SPOOL_MAX_BYTES: records that need "
                   "it are dropped (and counted in execlog_records_total{outcome=\"dropped\"})",
                   multiprocess_mode="max")
BATCHES_PER_STORE = Histogram(
    "execlog_worker_batches_per_store", "Batches a Celery worker stored in one transaction: more than one "
    "when they queued while every pool process was busy", buckets=(1, 2, 4, 8, 16))
STORED = Counter("execlog_worker_records", "Records of batches a Celery worker stored: inserted, duplicate "
                 "(already stored), dead (set aside as dead letters)", ["result"])

#: The label values, each series made at import: a scrape shows it at 0
#: before the first event (``rate()`` and alerts on it need the zero).
RECORD_OUTCOMES = ("published", "spooled", "replayed", "fallback", "dropped")
STORED_RESULTS = ("inserted", "duplicate", "dead")
for _outcome in RECORD_OUTCOMES:
    RECORDS.labels(_outcome)
for _result in STORED_RESULTS:
    STORED.labels(_result)
del _outcome, _result


def count_records(outcome: str, amount: int) -> None:
    """A logger counter moved (``Stats.add``): ``batches`` or a record outcome."""
    if outcome == "batches":
        BATCHES.inc(amount)
    else:
        RECORDS.labels(outcome).inc(amount)


def observe_publish(records: int, seconds: float) -> None:
    BATCH_RECORDS.observe(records)
    PUBLISH_SECONDS.observe(seconds)


def add_flusher_cpu(seconds: float) -> None:
    FLUSHER_CPU.inc(seconds)


def set_buffered(records: int) -> None:
    BUFFERED.set(records)


def set_spool(size: int, full: bool) -> None:
    SPOOL_BYTES.set(size)
    SPOOL_FULL.set(1 if full else 0)


def count_stored(result: Any, batches: int = 1) -> None:
    """A worker stored ``batches`` batches in one transaction (``result``,
    a ``StoreResult``)."""
    STORED.labels("inserted").inc(result.inserted)
    STORED.labels("duplicate").inc(result.duplicates)
    STORED.labels("dead").inc(result.dead)
    BATCHES_PER_STORE.observe(batches)
