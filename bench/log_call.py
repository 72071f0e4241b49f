"""What one ``log()`` call costs the caller, in microseconds, by durability.

    .venv/bin/python bench/log_call.py [--records 200000] [--repeats 3] [--modes memory,disk,...]

Each mode logs ``--records`` records from one thread through the real
pipeline (the flusher publishes to the broker as it goes) and times every
call with ``perf_counter_ns``: the median, p99 and p99.9 of one call, and the
producer's whole CPU per record (the calls plus the flusher's encoding and
shipping, by the process clock once everything is flushed). The modes take
turns, each run in a process of its own (the loaded app frozen out of the
garbage collector, as the project's process hooks do); the table gives the
median of ``--repeats`` runs of each figure, and each mode's median against
``memory``'s.

Modes: ``memory`` (``EXECLOG_DURABILITY=memory``), ``disk`` (the default:
every record journaled to the spool at ``log()``), ``disk+fsync``
(``disk`` with ``EXECLOG_FSYNC=interval``: the journal fsync'ed every
second, which survives a power loss of the host but for the last second).

**Cold calls.** A request logs after doing other work (parsing its body,
validating it), which takes the caches from ``log()``'s code and data: the
first call of a request costs several times a call in a loop. Each mode
also runs :data:`COLD_ROUNDS` rounds of a request's other work (a JSON body
of 50 records parsed and validated with the schema of ``POST /api/v1/logs``)
followed by one ``log()``, and the same rounds followed by one call of
:func:`floor_append` instead, the least a buffering logger can do (build the record's list, append it to a
deque): the calling thread's CPU (``thread_time_ns``) of each, warm (in a
loop) and cold (right after the other work). What the floor's cold call
costs over its warm one is what the machine charges any Python call made
cold.

Broker: ``CELERY_BROKER_URL`` if set, else Redis database 12 on localhost; the
batches go to a queue of their own (deleted at the end), so no worker is
needed and nothing lands in the database.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {
    "memory": {"EXECLOG_DURABILITY": "memory"},
    "disk": {"EXECLOG_DURABILITY": "disk"},
    "disk+fsync": {"EXECLOG_DURABILITY": "disk", "EXECLOG_FSYNC": "interval"},
}
DETAILS = {"tool_name": "catalog.search", "query": "python basics", "hits": 3}
#: Rounds of other work, each followed by one timed call (the cold figures).
COLD_ROUNDS = 2000
#: A request's body: what the other work parses.
REQUEST_BODY = json.dumps({"records": [
    {"trace_id": str(uuid.uuid4()), "level": "info", "category": "tool", "message": "catalog searched",
     "step": "design", "agent_name": "curriculum", "details": DETAILS} for _ in range(50)]})


def other_work() -> None:
    """What a request of ``POST /api/v1/logs`` does before it logs: parse
    its body, validate it with the API's schema."""
    from webapp.api.logs import LogBatchIn

    LogBatchIn().load(json.loads(REQUEST_BODY))


def floor_append(buffer: deque[list[Any]], trace: str, message: str, details: dict[str, Any]) -> None:
    """The least a buffering logger does per record: build it, append it."""
    buffer.append([None, time.time_ns(), trace, "info", "tool", message, "design", "curriculum",
                   None, None, details.copy(), None, None])


def cold_and_warm(call: Any) -> tuple[float, float]:
    """The median CPU of ``call()`` right after :func:`other_work`, and in a
    loop, in microseconds."""
    cpu = time.thread_time_ns
    cold, warm = [], []
    for _ in range(COLD_ROUNDS):
        other_work()
        started = cpu()
        call()
        cold.append(cpu() - started)
        for _ in range(3):
            started = cpu()
            call()
            warm.append(cpu() - started)
    return statistics.median(cold) / 1000, statistics.median(warm[len(warm) // 3:]) / 1000


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_mode(mode: str, records: int, broker: str) -> dict[str, Any]:
    """One mode in this process: its figures."""
    from webapp import create_app
    from webapp.config import config_from_env

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as var_dir:
        config = config_from_env({"CELERY_BROKER_URL": broker, "WEBAPP_VAR_DIR": var_dir})
        config.update(EXECLOG_QUEUE=queue, EXECLOG_MAX_BUFFER=max(100_000, records), **MODES[mode])
        app = create_app(config)
        logger = app.extensions["execlog"]
        log = logger.info
        trace = str(uuid.uuid4())
        for _ in range(1000):  # warm up: imports, the flusher thread, the broker connection
            log(trace, "tool", "warm-up", agent_name="curriculum", details=DETAILS)
        logger.flush()
        gc.freeze()

        timings: list[int] = []
        clock = time.perf_counter_ns
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        for _ in range(records):
            started = clock()
            log(trace, "tool", "catalog searched", agent_name="curriculum", step="design", details=DETAILS)
            timings.append(clock() - started)
        calls_wall = time.perf_counter() - wall_start
        flushed = logger.flush(timeout=120)
        cpu = time.process_time() - cpu_start
        buffer: deque[list[Any]] = deque(maxlen=1000)
        cold_us, warm_us = cold_and_warm(lambda: log(
            trace, "tool", "catalog searched", agent_name="curriculum", step="design", details=DETAILS))
        floor_cold_us, floor_warm_us = cold_and_warm(
            lambda: floor_append(buffer, trace, "catalog searched", DETAILS))
        flushed = logger.flush(timeout=120) and flushed
        stats = logger.stats()
        logger.close()
        _delete_queue(app, queue)
    timings.sort()
    return {
        "mode": mode,
        "median_us": percentile(timings, 0.50) / 1000,
        "p99_us": percentile(timings, 0.99) / 1000,
        "p999_us": percentile(timings, 0.999) / 1000,
        "mean_us": statistics.fmean(timings) / 1000,
        "calls_per_s": records / calls_wall,
        "producer_cpu_us_per_record": cpu / records * 1e6,
        "flushed": flushed,
        "dropped": stats["dropped"],
        "batch_records_p50": stats.get("batch_records_p50"),
        "cold_cpu_us": cold_us, "warm_cpu_us": warm_us,
        "floor_cold_cpu_us": floor_cold_us, "floor_warm_cpu_us": floor_warm_us,
    }


def _delete_queue(app: Any, queue: str) -> None:
    with app.extensions["celery"].connection_for_write() as connection:
        channel = connection.default_channel
        if hasattr(channel, "client"):
            channel.client.delete(queue)


def measure(modes: list[str], records: int, repeats: int, broker: str) -> list[dict[str, Any]]:
    """Each mode ``repeats`` times, taking turns; the medians of each figure."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            done = subprocess.run(
                [sys.executable, __file__, "--one", mode, "--records", str(records), "--broker", broker],
                cwd=ROOT, capture_output=True, text=True, timeout=900,
            )
            if done.returncode != 0:
                raise RuntimeError(f"mode {mode} failed: {done.stderr[-3000:]}")
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for mode in modes:
        row: dict[str, Any] = {"mode": mode, "runs": repeats}
        for key in ("median_us", "p99_us", "p999_us", "mean_us", "calls_per_s", "producer_cpu_us_per_record",
                    "cold_cpu_us", "warm_cpu_us", "floor_cold_cpu_us", "floor_warm_cpu_us"):
            row[key] = statistics.median(run[key] for run in runs[mode])
        row["all_flushed"] = all(run["flushed"] for run in runs[mode])
        row["dropped"] = sum(run["dropped"] for run in runs[mode])
        rows.append(row)
    base = next((row["median_us"] for row in rows if row["mode"] == "memory"), None)
    for row in rows:
        row["median_vs_memory"] = row["median_us"] / base if base else None
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| durability | median us | p99 us | p99.9 us | median against memory | "
             "producer CPU us / record |", "|---|---|---|---|---|---|"]
    for row in rows:
        ratio = "-" if row["median_vs_memory"] is None else f"x{row['median_vs_memory']:.2f}"
        lines.append(f"| {row['mode']} | {row['median_us']:.2f} | {row['p99_us']:.2f} | "
                     f"{row['p999_us']:.1f} | {ratio} | {row['producer_cpu_us_per_record']:.2f} |")
    return "\n".join(lines)


def cold_table(rows: list[dict[str, Any]]) -> str:
    """CPU of one call in a loop (warm) and right after a request's other
    work (cold), for ``log()`` and for the floor (:func:`floor_append`)."""
    lines = ["| durability | log() warm us | log() cold us | cold/warm | floor warm us | floor cold us | "
             "cold/warm |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['mode']} | {row['warm_cpu_us']:.2f} | {row['cold_cpu_us']:.2f} | "
                     f"x{row['cold_cpu_us'] / row['warm_cpu_us']:.1f} | {row['floor_warm_cpu_us']:.2f} | "
                     f"{row['floor_cold_cpu_us']:.2f} | "
                     f"x{row['floor_cold_cpu_us'] / row['floor_warm_cpu_us']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--one", choices=list(MODES), help="run one mode here and print its figures")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_mode(args.one, args.records, args.broker)))
        return
    rows = measure(args.modes.split(","), args.records, args.repeats, args.broker)
    print(f"log() cost over {args.records:,} calls a run, medians of {args.repeats} interleaved runs, "
          f"broker={args.broker.split('://')[0]}, {os.cpu_count()} CPUs")
    print(table(rows))
    print(f"\nCPU of one call, warm (in a loop) and cold (after a request's other work), medians of "
          f"{COLD_ROUNDS:,} rounds; the floor builds the record's list and appends it to a deque")
    print(cold_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
