"""Every labelled series of the execution log's counters is on /metrics at
0 from the process's start, not only after its first event (a rate, or an
alert on ``execlog_records_total{outcome="dropped"}``, needs the zero)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from prometheus_client import REGISTRY, generate_latest

from webapp.execlog import metrics

OUTCOMES = ("published", "spooled", "replayed", "fallback", "dropped")
RESULTS = ("inserted", "duplicate", "dead")

#: Run in a fresh interpreter: nothing counted yet, whatever this session did.
FRESH = """
import json, os, sys
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
import webapp.execlog.metrics  # noqa: F401
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    from prometheus_client.multiprocess import MultiProcessCollector
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
else:
    registry = REGISTRY
print(json.dumps(generate_latest(registry).decode()))
"""


def _fresh_exposition(env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, check=True,
                          env=env, timeout=60)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _zero_series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines()
            if not line.startswith("#") and float(line.rsplit(" ", 1)[1]) == 0}


def test_each_record_outcome_and_stored_result_is_exposed_at_zero_before_any_event():
    zero = _zero_series(_fresh_exposition())
    for outcome in OUTCOMES:
        assert f'execlog_records_total{{outcome="{outcome}"}}' in zero
    for result in RESULTS:
        assert f'execlog_worker_records_total{{result="{result}"}}' in zero


def test_the_dropped_series_is_there_at_zero_in_multiprocess_mode_too(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    zero = _zero_series(_fresh_exposition(env))
    assert 'execlog_records_total{outcome="dropped"}' in zero
    assert 'execlog_worker_records_total{result="dead"}' in zero


def test_the_module_names_every_outcome_the_logger_counts():
    from webapp.execlog.delivery import Stats

    assert set(metrics.RECORD_OUTCOMES) == set(Stats.FIELDS) - {"batches"} == set(OUTCOMES)
    assert set(metrics.STORED_RESULTS) == set(RESULTS)
    samples = [line for line in generate_latest(REGISTRY).decode().splitlines() if not line.startswith("#")]
    for outcome in OUTCOMES:  # at 0 or more, whatever this session counted
        assert any(line.startswith(f'execlog_records_total{{outcome="{outcome}"}} ') for line in samples)
