"""A producer process for fault scenarios: logs records, then crashes or exits.

    python -m tests.faults.producer <trace_id> <count> <out_dir> [--crash] [--sample]

Configuration comes from the environment (as for the app). It writes the ids
log() returned to ``<out_dir>/ids`` (one a line, as it goes, so they cost no
memory) and a report to ``<out_dir>/report.json``, then crashes (SIGKILL to
itself) or exits normally. With ``--sample`` the report has its RSS and the
logger's buffered count every 5,000 records, after a warm-up.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from webapp import create_app


def rss_mb() -> float:
    """Resident anonymous memory (the heap), not mapped file pages such as
    the spool's segments, which the kernel can write back and drop."""
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon")


def main() -> None:
    trace_id, count, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    crash, sample = "--crash" in sys.argv, "--sample" in sys.argv
    logger = create_app().extensions["execlog"]
    logger.info(f"{trace_id}-warm-up", "api", "warm-up")  # imports, the flusher, a first publish try
    logger.flush(timeout=10)
    report: dict = {"rss_mb": [], "buffered": [], "baseline_rss_mb": rss_mb()}
    with open(os.path.join(out_dir, "ids"), "w") as ids:
        for i in range(count):
            record = logger.info(trace_id, "agent", f"record {i} " + "x" * 200,
                                 details={"i": i, "payload": "y" * 100})
            ids.write(record.id + "\n")
            if sample and i % 5000 == 0:
                report["rss_mb"].append(rss_mb())
                report["buffered"].append(logger.stats()["buffered"])
    report["stats"] = logger.stats()
    with open(os.path.join(out_dir, "report.json"), "w") as stream:
        json.dump(report, stream)
    if crash:
        os.kill(os.getpid(), signal.SIGKILL)
    logger.close()
    print(json.dumps(logger.stats()), flush=True)


if __name__ == "__main__":
    main()
