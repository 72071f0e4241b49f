"""Where the cost of a request's first ``log()`` call goes: which of its parts
the request's own work leaves cold.

    .venv/bin/python bench/log_cold.py [--rounds 1000] [--modes memory,disk] [--out DIR]

``bench/log_call.py`` measures that a call made right after a request's
other work (its body parsed and validated) costs several times a call in a
loop, and ``make bench`` that this first call of each request sets the p99
of ``log()`` under load by itself. This script asks which part of the call
is cold. Each round does the request's other work (:func:`log_call.other_work`),
then one part of what ``log()`` does (untimed: it brings that part's code and
data back into the caches), then one ``log()`` timed by the calling thread's
CPU. What warming a part saves, against warming nothing, is what that part
costs the cold call; warming ``log()`` itself gives the whole cold penalty.
The rounds take turns between the parts, so that a slow spell of the machine
falls on every part alike.

The parts reach into the buffer's private attributes (its lock):
this is a diagnostic of the code as it is, not a use of its API.

An ``empty`` row times the clock alone (two ``thread_time_ns`` reads) right
after the other work: the measurement's own cost in a cold call.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.log_call import DETAILS, MODES, mode_logger, other_work, save  # noqa: E402

RECORD = {"trace_id": str(uuid.uuid4()), "category": "tool", "message": "catalog searched",
          "agent_name": "curriculum", "step": "design", "details": DETAILS}


def _signature(trace_id: Any = None, category: Any = None, message: Any = None, *, task_id: Any = None,
               step: Any = None, agent_name: Any = None, roadmap_id: Any = None, concept_id: Any = None,
               details: Any = None, duration_ms: Any = None, attempt: Any = None) -> None:
    """A function with ``info()``'s signature that does nothing."""


def parts(logger: Any) -> dict[str, Callable[[], Any]]:
    """What to warm before the timed call, by name."""
    from webapp.execlog.normalise import json_default
    from webapp.execlog.record import LogRecord
    from webapp.execlog.wire import ROW_OPTION

    import orjson

    backend = logger.backend
    empty_fields = (None, None, "t", "info", "tool", "m", None, None, None, None, None, None, None)
    row = LogRecord(("0" * 32, 0, RECORD["trace_id"], "info", "tool", "catalog searched", "design",
                     "curriculum", None, None, DETAILS, None, None))

    def lock() -> None:
        with backend._lock:
            pass

    return {
        "nothing": lambda: None,
        "the call's arguments (a function of info()'s signature)": lambda: _signature(**RECORD),
        "the record's list (LogRecord)": lambda: LogRecord(empty_fields),
        "the clock (time.time_ns)": time.time_ns,
        "the buffer's lock": lock,
        "the row's JSON (orjson)": lambda: orjson.dumps(row, json_default, ROW_OPTION),
        "log() itself": lambda: logger.info(**RECORD),
    }


def run(mode: str, rounds: int, broker: str) -> dict[str, Any]:
    """``rounds`` rounds of each part, taking turns; the medians."""
    with contextlib.ExitStack() as stack:
        logger = mode_logger(stack, mode, broker)
        for _ in range(1000):  # imports, the flusher thread, the broker connection
            logger.info(**RECORD)
        logger.flush()
        gc.freeze()
        warmers = parts(logger)
        names = list(warmers)
        cpu = time.thread_time_ns
        timed: dict[str, list[int]] = {name: [] for name in names}
        empty: list[int] = []
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                other_work()
                warmers[name]()
                started = cpu()
                logger.info(**RECORD)
                timed[name].append(cpu() - started)
            other_work()
            started = cpu()
            empty.append(cpu() - started)
        logger.flush(timeout=60)
    medians = {name: statistics.median(values) / 1000 for name, values in timed.items()}
    return {"mode": mode, "rounds": rounds, "cold_log_us": medians,
            "empty_us": statistics.median(empty) / 1000}


def table(result: dict[str, Any]) -> str:
    medians = result["cold_log_us"]
    cold, warm = medians["nothing"], medians["log() itself"]
    lines = [f"`{result['mode']}`: log() CPU right after the request's other work, by what was warmed "
             f"first (medians of {result['rounds']:,} rounds)",
             "", "| warmed first | log() CPU us | saves us | share of the cold penalty |",
             "|---|---|---|---|"]
    for name, value in medians.items():
        share = (cold - value) / (cold - warm) if cold > warm else 0.0
        lines.append(f"| {name} | {value:.2f} | {cold - value:.2f} | {share:.0%} |")
    lines.append(f"| (the clock alone, no call) | {result['empty_us']:.2f} | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--modes", default="memory,disk")
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--out", help="also write the tables to <stamp>-log_cold.md in this directory")
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; known: {', '.join(MODES)}")
    results = [run(mode, args.rounds, args.broker) for mode in modes]
    text = "\n\n".join(table(result) for result in results)
    print(text)
    if args.out:
        save(args.out, "log_cold", text, results)


if __name__ == "__main__":
    main()
