"""What one ``log()`` call costs the caller, in microseconds.

    .venv/bin/python bench/log_call.py [--records 200000] [--durability memory|disk]

Logs ``--records`` records from one thread through the real pipeline (the
flusher publishes to the broker as it goes) and times every call with
``perf_counter_ns``. Prints the median, p99 and p99.9 of one call, and the
producer's whole CPU time per record (the calls plus the flusher's shipping),
measured by the process clock once everything is flushed.

Broker: ``CELERY_BROKER_URL`` if set, else Redis database 12 on localhost; the
batches go to a queue of their own (deleted at the end), so no worker is
needed and nothing lands in the database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webapp import create_app  # noqa: E402
from webapp.config import config_from_env  # noqa: E402


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--durability", choices=("memory", "disk"), default="memory")
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12"))
    args = parser.parse_args()

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as var_dir:
        config = config_from_env({"CELERY_BROKER_URL": args.broker, "WEBAPP_VAR_DIR": var_dir})
        config.update(EXECLOG_QUEUE=queue, EXECLOG_DURABILITY=args.durability,
                      EXECLOG_MAX_BUFFER=max(100_000, args.records))
        app = create_app(config)
        logger = app.extensions["execlog"]
        log = logger.info
        trace = str(uuid.uuid4())
        details = {"tool_name": "catalog.search", "query": "python basics", "hits": 3}
        for i in range(1000):  # warm up: imports, the flusher thread, the broker connection
            log(trace, "tool", "warm-up", agent_name="curriculum", details=details)
        logger.flush()

        timings: list[int] = []
        clock = time.perf_counter_ns
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        for i in range(args.records):
            started = clock()
            log(trace, "tool", "catalog searched", agent_name="curriculum", step="design", details=details)
            timings.append(clock() - started)
        calls_wall = time.perf_counter() - wall_start
        flushed = logger.flush(timeout=120)
        cpu = time.process_time() - cpu_start
        stats = logger.stats()
        logger.close()
        _delete_queue(app, queue)

    timings.sort()
    print(f"log() cost over {args.records:,} calls, durability={args.durability}, "
          f"broker={args.broker.split('://')[0]}, {os.cpu_count()} CPUs")
    print(f"  median  {percentile(timings, 0.50) / 1000:8.2f} us")
    print(f"  p99     {percentile(timings, 0.99) / 1000:8.2f} us")
    print(f"  p99.9   {percentile(timings, 0.999) / 1000:8.2f} us")
    print(f"  mean    {statistics.fmean(timings) / 1000:8.2f} us")
    print(f"  calls: {args.records / calls_wall:,.0f} records/s from one thread")
    print(f"  producer CPU per record, shipping included: {cpu / args.records * 1e6:.2f} us")
    print(f"  flushed={flushed} published={stats['published']} batches={stats['batches']} "
          f"spooled={stats['spooled']} dropped={stats['dropped']}")


def _delete_queue(app, queue: str) -> None:
    with app.extensions["celery"].connection_for_write() as connection:
        channel = connection.default_channel
        if hasattr(channel, "client"):
            channel.client.delete(queue)


if __name__ == "__main__":
    main()
