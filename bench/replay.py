"""How fast a process replays the spool a killed process left behind.

    .venv/bin/python bench/replay.py [--records 100000] [--repeats 3]

A child process logs ``--records`` records in the default durability
(``disk``: every record journaled at ``log()``) while its broker is
unreachable, so everything stays in its spool segments, and is then
SIGKILLed. Then two ways of getting those records out are timed, each on a
spool of its own copy of those segments, taking turns ``--repeats`` times:

- ``start``: a new process starts on that spool directory with the broker
  up and does nothing else; its flusher, started by the process hook every
  gunicorn worker and Celery child runs (``webapp.lifecycle.child_started``),
  adopts the dead process's segments and replays them between its own
  batches. Timed from the start hook to the moment its ``stats()`` count
  every record replayed.
- ``flask execlog replay``: ``ExecutionLogger.replay()`` called directly,
  which replays every segment at once.

Broker: ``CELERY_BROKER_URL`` if set, else Redis database 12 on localhost; the
batches go to a queue of their own (counted, then deleted), so no worker is
needed and nothing lands in the database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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

from bench.run import queued_records  # noqa: E402

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1
DETAILS = {"tool_name": "catalog.search", "query": "python basics", "hits": 3}
WAYS = ("start", "replay()")


def _app(broker: str, var_dir: str, queue: str) -> Any:
    from webapp import create_app
    from webapp.config import config_from_env

    config = config_from_env({"CELERY_BROKER_URL": broker, "WEBAPP_VAR_DIR": var_dir})
    config.update(EXECLOG_QUEUE=queue, EXECLOG_MAX_BUFFER=200_000)
    return create_app(config)


def log_and_die(var_dir: str, records: int) -> None:
    """The child: journal ``records`` records with no broker, then SIGKILL."""
    app = _app(DEAD_BROKER, var_dir, "bench-replay-unused")
    log = app.extensions["execlog"].info
    trace = str(uuid.uuid4())
    for number in range(records):
        log(trace, "tool", "catalog searched", agent_name="curriculum", step="design",
            details={**DETAILS, "n": number})
    os.kill(os.getpid(), signal.SIGKILL)


def _delete_queue(app: Any, queue: str) -> None:
    with app.extensions["celery"].connection_for_write() as connection:
        connection.default_channel.client.delete(queue)


def time_one(way: str, var_dir: str, records: int, broker: str) -> dict[str, Any]:
    """Replay the spool in ``var_dir`` one ``way``; its figures."""
    queue = f"bench-replay-{uuid.uuid4().hex[:8]}"
    loading = time.perf_counter()
    app = _app(broker, var_dir, queue)
    logger = app.extensions["execlog"]
    started = time.perf_counter()
    if way == "replay()":
        report = logger.replay()
        replayed = report.records
    else:
        from webapp import lifecycle

        lifecycle.child_started(app)
        deadline = started + 300
        while logger.stats()["replayed"] < records and time.perf_counter() < deadline:
            time.sleep(0.01)
        replayed = logger.stats()["replayed"]
    seconds = time.perf_counter() - started
    logger.close()
    queued = queued_records(broker, queue)
    _delete_queue(app, queue)
    return {"way": way, "records": replayed, "queued": queued, "seconds": seconds,
            "records_per_s": replayed / seconds, "app_seconds": started - loading}


def measure(records: int, repeats: int, broker: str) -> list[dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as scratch:
        left = Path(scratch, "left")
        subprocess.run([sys.executable, __file__, "--child", str(left), "--records", str(records)],
                       cwd=ROOT, check=False, timeout=600)
        for _ in range(repeats):
            for way in WAYS:
                copy = Path(scratch, "copy")
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(left, copy)
                done = subprocess.run(
                    [sys.executable, __file__, "--one", way, str(copy), "--records", str(records),
                     "--broker", broker],
                    cwd=ROOT, capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise RuntimeError(f"{way} failed: {done.stderr[-3000:]}")
                runs[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for way in WAYS:
        rows.append({
            "way": way,
            "runs": repeats,
            "records": records,
            "all_replayed": all(run["records"] == records == run["queued"] for run in runs[way]),
            "app_seconds": statistics.median(run["app_seconds"] for run in runs[way]),
            "seconds": statistics.median(run["seconds"] for run in runs[way]),
            "records_per_s": statistics.median(run["records_per_s"] for run in runs[way]),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| how | records | every record queued once | app start s | replay s | records/s |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['way']} | {row['records']:,} | {'yes' if row['all_replayed'] else 'NO'} | "
                     f"{row['app_seconds']:.2f} | {row['seconds']:.2f} | {row['records_per_s']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--child", metavar="VAR_DIR", help="log with no broker into VAR_DIR, then die")
    parser.add_argument("--one", nargs=2, metavar=("WAY", "VAR_DIR"), help="time one replay here")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.child:
        log_and_die(args.child, args.records)
        return
    if args.one:
        print(json.dumps(time_one(args.one[0], args.one[1], args.records, args.broker)))
        return
    rows = measure(args.records, args.repeats, args.broker)
    print(f"Replay of a SIGKILLed process's spool, {args.records:,} records, medians of {args.repeats} "
          f"interleaved runs, broker={args.broker.split('://')[0]}, {os.cpu_count()} CPUs")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
