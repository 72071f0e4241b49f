"""What one ``log()`` call costs the caller, in microseconds, by durability.

    .venv/bin/python bench/log_call.py [--records 200000] [--repeats 3] [--modes memory,disk,...] [--out DIR]

Each run is one process that holds one app per mode (each with its own
spool directory and queue) and logs through each, from one thread, through
the real pipeline (each mode's flusher publishes to the broker as it goes).
Every call is timed with ``perf_counter_ns``. The loaded apps are frozen
out of the garbage collector, as the project's process hooks do.

* **In turns**, the modes' medians compared: ``--records`` calls of each
  mode, the modes taking turns of :data:`TURN` calls (a few milliseconds),
  the order rotating from turn to turn, each turn ending with its logger
  flushed. Whatever the machine does meanwhile (on a shared host a spell of
  seconds can run 1.6 times slower than the next, and with each mode in a
  process of its own one code measured at x1.43 of ``memory`` one day and
  x2.15 the next) falls on every mode alike, so each mode's median against
  ``memory``'s is taken here. Turns add to every mode's median alike
  (about 1.3 us), which pulls the ratio toward 1 a little (x1.37 in turns,
  x1.46 between the stretches' medians, in one quiet run).
* **In one stretch**, each mode's own figures: ``--records`` calls of one
  mode, then of the next (the order rotating from run to run): the median,
  p99 and p99.9 of one call, and the producer's whole CPU per record (the
  calling thread's CPU plus that of the threads the mode's logger started,
  its flusher, until everything is flushed). Short turns put the harness
  itself in the tails (p99.9 came out up to twice that of a stretch), so
  these come from here.

The table gives the median of ``--repeats`` runs of each figure, and the
median of the runs' ratios in turns.

Modes: ``memory`` (``EXECLOG_DURABILITY=memory``), ``disk`` (the default:
every record journaled to the spool at ``log()``), ``disk+fsync``
(``disk`` with ``EXECLOG_FSYNC=interval``: the journal fsync'ed every
second, which survives a power loss of the host but for the last second).

**Cold calls.** A request logs after doing other work (parsing its body,
validating it), which takes the caches from ``log()``'s code and data: the
first call of a request costs several times a call in a loop. Each run
also does :data:`COLD_ROUNDS` rounds, per mode, of a request's other work
(a JSON body of 50 records parsed and validated with the schema of ``POST
/api/v1/logs``) followed by one ``log()``, and as many followed by one call
of :func:`floor_append` instead, the least a buffering logger can do (build
the record's list, append it to a deque), one call's rounds after the
other's: the calling thread's CPU (``thread_time_ns``) of each,
warm (in a loop) and cold (right after the other work). What the floor's
cold call costs over its warm one is what the machine charges any Python
call made cold.

Broker: ``CELERY_BROKER_URL`` if set, else Redis database 12 on localhost; the
batches go to queues of their own (deleted at the end), so no worker is
needed and nothing lands in the database.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {
    "memory": {"EXECLOG_DURABILITY": "memory"},
    "disk": {"EXECLOG_DURABILITY": "disk"},
    "disk+fsync": {"EXECLOG_DURABILITY": "disk", "EXECLOG_FSYNC": "interval"},
}
DETAILS = {"tool_name": "catalog.search", "query": "python basics", "hits": 3}
#: Calls of one mode in a row, in turns: a few milliseconds, short beside the
#: spells of a shared machine (turns of 10,000 calls still let one mode's
#: median come out at x1.0 and x1.4 of another's in two runs of one code).
TURN = 2000
#: Rounds of other work per mode (and floor), each followed by one timed call
#: (the cold figures).
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


def cold_and_warm(calls: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, float]]:
    """For each call, the median CPU of ``call()`` right after
    :func:`other_work` and in a loop, in microseconds: :data:`COLD_ROUNDS`
    rounds of one call, then of the next, as requests come: the last call
    before a request's other work was the same call, in the request before.
    (Rounds taking turns between the calls measured colder calls than that.)"""
    cpu = time.thread_time_ns
    cold: dict[str, list[int]] = {name: [] for name in calls}
    warm: dict[str, list[int]] = {name: [] for name in calls}
    for name, call in calls.items():
        for _ in range(COLD_ROUNDS):
            other_work()
            started = cpu()
            call()
            cold[name].append(cpu() - started)
            for _ in range(3):
                started = cpu()
                call()
                warm[name].append(cpu() - started)
    return {name: (statistics.median(cold[name]) / 1000,
                   statistics.median(warm[name][len(warm[name]) // 3:]) / 1000) for name in calls}


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def threads_cpu_ns(threads: list[threading.Thread]) -> int:
    """The CPU the threads have used so far (those still alive)."""
    total = 0
    for thread in threads:
        if thread.is_alive() and thread.ident is not None:
            total += time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))
    return total


def run_here(modes: list[str], records: int, broker: str, first: int = 0) -> list[dict[str, Any]]:
    """Every mode in this process, in turns then in stretches (the
    ``first``-th mode's first): each mode's figures."""
    with contextlib.ExitStack() as stack:
        loggers: dict[str, Any] = {}
        threads: dict[str, list[threading.Thread]] = {}
        trace = str(uuid.uuid4())
        for mode in modes:
            before = set(threading.enumerate())
            max_buffer = max(100_000, records)
            logger = loggers[mode] = mode_logger(stack, mode, broker, EXECLOG_MAX_BUFFER=max_buffer)
            for _ in range(1000):  # warm up: imports, the flusher thread, the broker connection
                logger.info(trace, "tool", "warm-up", agent_name="curriculum", details=DETAILS)
            logger.flush()
            # What this mode's logger started: its flusher (and anything else of its own).
            threads[mode] = [thread for thread in threading.enumerate() if thread not in before]
        gc.freeze()
        in_turns = _timed_calls(loggers, threads, records, trace, TURN)
        figures = _timed_calls(loggers, threads, records, trace, records, first)
        floor_buffer: deque[list[Any]] = deque(maxlen=1000)
        calls: dict[str, Callable[[], Any]] = {
            mode: functools.partial(loggers[mode].info, trace, "tool", "catalog searched",
                                    agent_name="curriculum", step="design", details=DETAILS)
            for mode in modes}
        calls["floor"] = functools.partial(floor_append, floor_buffer, trace, "catalog searched", DETAILS)
        cold_warm = cold_and_warm(calls)
        for mode in modes:
            row = figures[mode]
            row["median_in_turns_us"] = in_turns[mode]["median_us"]
            row["flushed"] = loggers[mode].flush(timeout=120) and row["flushed"] and in_turns[mode]["flushed"]
            row["dropped"] = loggers[mode].stats()["dropped"]
            row["cold_cpu_us"], row["warm_cpu_us"] = cold_warm[mode]
            row["floor_cold_cpu_us"], row["floor_warm_cpu_us"] = cold_warm["floor"]
    return [figures[mode] for mode in modes]


def _timed_calls(loggers: dict[str, Any], threads: dict[str, list[threading.Thread]], records: int,
                 trace: str, turn: int, first: int = 0) -> dict[str, dict[str, Any]]:
    """``records`` timed calls of each logger, taking turns of ``turn``
    calls; each turn ends with its logger flushed, so that one flusher
    works at a time, as in a process with one logger."""
    modes = list(loggers)
    block = min(turn, records)
    timings: dict[str, list[int]] = {mode: [] for mode in modes}
    caller_cpu = dict.fromkeys(modes, 0)
    wall = dict.fromkeys(modes, 0)
    flushed = dict.fromkeys(modes, True)
    own_cpu = {mode: -threads_cpu_ns(threads[mode]) for mode in modes}
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    for index in range(max(1, records // block)):
        shift = (first + index) % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            log, out = loggers[mode].info, timings[mode]
            block_started, block_cpu = clock(), cpu()
            for _ in range(block):
                started = clock()
                log(trace, "tool", "catalog searched", agent_name="curriculum", step="design",
                    details=DETAILS)
                out.append(clock() - started)
            caller_cpu[mode] += cpu() - block_cpu
            wall[mode] += clock() - block_started
            flushed[mode] = loggers[mode].flush(timeout=120) and flushed[mode]
    figures = {}
    for mode in modes:
        own_cpu[mode] += threads_cpu_ns(threads[mode])
        values = sorted(timings[mode])
        figures[mode] = {
            "mode": mode,
            "median_us": percentile(values, 0.50) / 1000,
            "p99_us": percentile(values, 0.99) / 1000,
            "p999_us": percentile(values, 0.999) / 1000,
            "mean_us": statistics.fmean(values) / 1000,
            "calls_per_s": len(values) / (wall[mode] / 1e9),
            "producer_cpu_us_per_record": (caller_cpu[mode] + own_cpu[mode]) / len(values) / 1000,
            "flushed": flushed[mode],
            "batch_records_p50": loggers[mode].stats().get("batch_records_p50"),
        }
    return figures


def mode_logger(stack: contextlib.ExitStack, mode: str, broker: str, **settings: Any) -> Any:
    """The logger of an app made for ``mode``, with a spool directory and a
    queue of its own; ``stack`` closes it and deletes both at its end."""
    from webapp import create_app
    from webapp.config import config_from_env

    var_dir = stack.enter_context(tempfile.TemporaryDirectory())
    config = config_from_env({"CELERY_BROKER_URL": broker, "WEBAPP_VAR_DIR": var_dir})
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    config.update(EXECLOG_QUEUE=queue, **settings, **MODES[mode])
    app = create_app(config)
    stack.callback(_delete_queue, app, queue)
    logger = app.extensions["execlog"]
    stack.callback(logger.close)
    return logger


def save(out: str, name: str, text: str, data: Any) -> None:
    """Keep what a run printed (``<stamp>-<name>.md``) and its figures
    (``<stamp>-<name>.json``) in the directory ``out``."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    (directory / f"{stamp}-{name}.md").write_text(text + "\n")
    (directory / f"{stamp}-{name}.json").write_text(json.dumps(data, indent=1))


def _delete_queue(app: Any, queue: str) -> None:
    with app.extensions["celery"].connection_for_write() as connection:
        channel = connection.default_channel
        if hasattr(channel, "client"):
            channel.client.delete(queue)


def measure(modes: list[str], records: int, repeats: int, broker: str) -> list[dict[str, Any]]:
    """``repeats`` runs of every mode; the medians of each figure."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    for repeat in range(repeats):
        done = subprocess.run(
            [sys.executable, __file__, "--here", "--modes", ",".join(modes), "--records", str(records),
             "--broker", broker, "--first", str(repeat)],
            cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the run failed: {done.stderr[-3000:]}")
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        base = next((row["median_in_turns_us"] for row in rows if row["mode"] == "memory"), None)
        for row in rows:
            runs[row["mode"]].append(row)
            if base:
                ratios[row["mode"]].append(row["median_in_turns_us"] / base)
    rows = []
    for mode in modes:
        row: dict[str, Any] = {"mode": mode, "runs": repeats}
        for key in ("median_us", "median_in_turns_us", "p99_us", "p999_us", "mean_us", "calls_per_s",
                    "producer_cpu_us_per_record", "cold_cpu_us", "warm_cpu_us", "floor_cold_cpu_us",
                    "floor_warm_cpu_us"):
            row[key] = statistics.median(run[key] for run in runs[mode])
        row["all_flushed"] = all(run["flushed"] for run in runs[mode])
        row["dropped"] = sum(run["dropped"] for run in runs[mode])
        row["median_vs_memory"] = statistics.median(ratios[mode]) if ratios[mode] else None
        row["median_vs_memory_runs"] = [round(ratio, 3) for ratio in ratios[mode]]
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Each mode's figures in one stretch, then its median in turns and
    that against ``memory``'s."""
    lines = ["| durability | median us | p99 us | p99.9 us | producer CPU us / record | median in turns us | "
             "median against memory, in turns |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        ratio = "-" if row["median_vs_memory"] is None else f"x{row['median_vs_memory']:.2f}"
        lines.append(f"| {row['mode']} | {row['median_us']:.2f} | {row['p99_us']:.2f} | "
                     f"{row['p999_us']:.1f} | {row['producer_cpu_us_per_record']:.2f} | "
                     f"{row['median_in_turns_us']:.2f} | {ratio} |")
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
    parser.add_argument("--here", action="store_true", help="one run, in this process: print its figures")
    parser.add_argument("--first", type=int, default=0, help="with --here: the mode whose stretch is first")
    parser.add_argument("--out", help="also write the tables (<stamp>-log_call.md) and the rows "
                                      "(<stamp>-log_call.json) to this directory")
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; known: {', '.join(MODES)}")
    if args.here:
        print(json.dumps(run_here(modes, args.records, args.broker, args.first)))
        return
    rows = measure(modes, args.records, args.repeats, args.broker)
    text = "\n".join([
        f"log() cost over {args.records:,} calls of each mode a run, one process a run holding every mode, "
        f"medians of {args.repeats} runs, broker={args.broker.split('://')[0]}, {os.cpu_count()} CPUs",
        table(rows),
        "",
        f"CPU of one call, warm (in a loop) and cold (after a request's other work), medians of "
        f"{COLD_ROUNDS:,} rounds; the floor builds the record's list and appends it to a deque",
        cold_table(rows),
    ])
    print(text)
    if args.out:
        save(args.out, "log_call", text, rows)


if __name__ == "__main__":
    main()
