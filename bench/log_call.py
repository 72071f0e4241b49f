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
        for key in ("median_us", "p99_us", "p999_us", "mean_us", "calls_per_s", "producer_cpu_us_per_record"):
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
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
