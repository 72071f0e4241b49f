"""make bench works: the harness runs once on a tiny workload and reports
every figure. A check that it completes, never of a speed.

Marked ``bench``: some 26 gunicorn and Celery start-ups, over two minutes,
so ``make test`` leaves it out and ``make test-bench`` (run by ``.ci/run``)
runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import producer

from ..conftest import BENCH_REDIS_URL, TEST_DB_NAME
from ..support.processes import ROOT

FIGURES = ("requests_per_s", "latency_p50_ms", "latency_p99_ms", "log_p50_us", "log_p99_us",
           "log_cpu_p50_us", "log_cpu_p99_us",
           "web_cpu_ms_per_request", "flusher_cpu_us_per_record", "producer_cpu_us_per_record",
           "web_backends_peak", "total_backends_peak", "transactions_per_1000",
           "end_to_end_records_per_s", "visible_p99_s", "errors")


pytestmark = pytest.mark.bench


def test_the_benchmark_runs_and_reports_every_figure(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--tiny", "--out", str(tmp_path / "results"),
         "--work-dir", str(tmp_path / "work"),
         "--database-url", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{TEST_DB_NAME}_bench",
         "--redis-url", BENCH_REDIS_URL],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (result,) = (tmp_path / "results").glob("*.json")
    figures = json.loads(result.read_text())
    backends = {row["backend"]: row for row in figures["http"]}
    assert set(backends) == {"no logging", "direct", "thread", "celery (memory)", "celery (disk)",
                             "celery (memory), RabbitMQ"}
    for name, row in backends.items():
        for figure in FIGURES:
            if name == "no logging" and figure in ("log_p50_us", "log_p99_us", "log_cpu_p50_us",
                                                   "log_cpu_p99_us", "transactions_per_1000",
                                                   "flusher_cpu_us_per_record", "producer_cpu_us_per_record",
                                                   "end_to_end_records_per_s", "visible_p99_s"):
                continue
            assert row[figure] is not None, f"{name}: {figure}"
        assert row["errors"] == 0, name
    assert all(row["succeeded"] == row["executions"] for row in figures["workflows"])
    assert len({row["records"] for row in figures["workflows"]}) == 1, "every back end stored every record"
    assert [row["backend"] for row in figures["steady"]] == [
        "no logging", "thread", "celery (memory)", "celery (disk)", "celery (memory), batches of 500"]
    assert all(row["errors"] == 0 for row in figures["steady"])
    assert all(row["visible_p99_s"] is not None for row in figures["steady"][1:])
    assert {row["backend"] for row in figures["exhaustion"]} == {"direct", "celery (memory)"}
    assert len(figures["ceiling"]) == 6 and all(row["rows_per_s"] > 0 for row in figures["ceiling"])
    assert [(row["processes"], row["prefetch"]) for row in figures["drains"]] == [(1, 4), (2, 4), (1, 1)]
    assert all(row["rows"] == 30_000 and row["rows_per_s"] > 0 for row in figures["drains"])
    assert {row["case"] for row in figures["producer"]} == set(producer.CASES)
    assert all(row["cpu_us_per_record"] > 0 for row in figures["producer"])
    assert all(row["ratio_to_floor"] for row in figures["producer"])
    for row in figures["isolated"] + figures["isolated_steady"]:
        assert row["errors"] == 0, row["backend"]
        if row["backend"] != "no logging":
            assert row["records_logged"] > 0
            assert row["records_queued"] == row["records_logged"] == row["records_stored"], row
    assert all(row["copy_ratio"] > 0 for row in figures["drains"])
    report = (tmp_path / "results" / "latest.md").read_text()
    assert "## Targets" in report and "the floor" in report
    assert "| direct |" in report and "against **direct**" in report
    assert (tmp_path / "results" / "latest.png").stat().st_size > 10_000


def test_the_log_call_benchmark_reports_warm_and_cold_calls(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/log_call.py", "--records", "2000", "--repeats", "1", "--modes", "memory,disk",
         "--broker", BENCH_REDIS_URL, "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [tables] = tmp_path.glob("*-log_call.md")
    assert tables.read_text() == done.stdout  # what make bench keeps is what it printed
    rows = json.loads(tables.with_suffix(".json").read_text())
    assert [row["mode"] for row in rows] == ["memory", "disk"]
    for row in rows:
        assert row["all_flushed"] and row["dropped"] == 0
        figures = ("median_us", "median_in_turns_us", "p99_us", "cold_cpu_us", "warm_cpu_us",
                   "floor_cold_cpu_us", "floor_warm_cpu_us")
        assert all(row[figure] > 0 for figure in figures), row
    # Both modes ran in one process, taking turns: the ratio is taken there.
    assert [row["median_vs_memory_runs"] for row in rows][0] == [1.0]
    assert len(rows[1]["median_vs_memory_runs"]) == 1 and rows[1]["median_vs_memory"] > 0
    assert "log() warm us" in done.stdout and "floor cold us" in done.stdout


def test_the_cold_call_diagnostic_reports_each_part(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/log_cold.py", "--rounds", "20", "--modes", "memory,disk",
         "--broker", BENCH_REDIS_URL, "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [tables] = tmp_path.glob("*-log_cold.md")
    assert tables.read_text() == done.stdout
    results = json.loads(tables.with_suffix(".json").read_text())
    assert [result["mode"] for result in results] == ["memory", "disk"]
    for result in results:
        assert set(result["cold_log_us"]) >= {"nothing", "log() itself", "the buffer's lock",
                                              "the clock (time.time_ns)"}
        assert all(value > 0 for value in result["cold_log_us"].values()) and result["empty_us"] > 0
    assert "share of the cold penalty" in done.stdout


def test_the_waits_diagnostic_counts_every_call_of_every_request(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/log_waits.py", "--requests", "30", "--rounds", "1", "--modes", "memory,disk",
         "--database-url", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{TEST_DB_NAME}_waits",
         "--redis-url", BENCH_REDIS_URL, "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [tables] = tmp_path.glob("*-log_waits.md")
    assert tables.read_text() == done.stdout
    results = json.loads(tables.with_suffix(".json").read_text())
    assert [result["mode"] for result in results] == ["memory", "disk"]
    for result in results:
        assert 1 <= result["first_calls"] <= 30 // 10 + 2  # one request in 10 of each process counts
        assert 0 <= result["first_waited"] <= 1 and 0 <= result["other_waited"] <= 1
        assert result["cpu_p50_us"] > 0 and result["first_cpu_p50_us"] > 0 and result["requests_per_s"] > 0
