"""Which ``log()`` calls make a request's thread wait, under load.

    .venv/bin/python bench/log_waits.py [--requests 2000] [--rounds 3] [--modes memory,disk]
                                        [--root DIR ...] [--out DIR]

Serves the web tier alone (gunicorn with ``docker/gunicorn.conf.py``, no
Celery worker: the batches wait in Redis, as in ``make bench``'s "web tier
alone") with one route: it validates a body of 50 records as
``POST /api/v1/logs`` does and logs them; in one request in
:data:`COUNTED_EVERY`, it counts for each call the calling thread's
voluntary context switches during it (``getrusage(RUSAGE_THREAD)``). A call
that switched waited: for a lock another thread held, or for the GIL. The
load generator saturates it (16 connections) and the table gives, for a request's first call and for
the others, the share that waited and their CPU (``thread_time_ns``; the
``getrusage`` calls around each call are outside it but do cool the caches
a little, so ``make bench`` has the CPU figures that count).

Each ``--root`` is a checkout to serve, with its own ``.venv`` (``make
install`` there): two commits compared in one run, taking turns with the
modes, rounds interleaved. It uses its own database, ``webapp_bench_waits``
(dropped and made again at the start), and Redis database 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

RECORDS = 50
CONCURRENCY = 16
#: One request in this many (of each process) counts; the others log at full
#: speed (counting every call adds system calls between them, which moves
#: where the GIL changes hands: the effect measured all but vanishes).
COUNTED_EVERY = 10


def create_waits_app() -> Any:
    """The app gunicorn serves (``log_waits:create_waits_app()``): the served
    checkout's own app, plus the route."""
    from resource import RUSAGE_THREAD, getrusage

    from flask import current_app, request

    from webapp import create_app
    from webapp.api.logs import LogBatchIn

    app = create_app()

    requests = itertools.count()

    @app.post("/bench/waits")
    def waits() -> Any:
        records = LogBatchIn().load(request.get_json())["records"]
        logger = current_app.extensions["execlog"]
        if next(requests) % COUNTED_EVERY:
            for record in records:
                logger.log(**record)
            return {"accepted": len(records), "log_ns": [], "log_cpu_ns": []}
        cpu_clock = time.thread_time_ns
        switches: list[int] = []
        cpu: list[int] = []
        for record in records:
            before = getrusage(RUSAGE_THREAD).ru_nvcsw
            started = cpu_clock()
            logger.log(**record)
            cpu.append(cpu_clock() - started)
            switches.append(getrusage(RUSAGE_THREAD).ru_nvcsw - before)
        return {"accepted": len(records), "log_ns": [], "log_cpu_ns": cpu, "log_waits": switches}

    return app


def serve_and_load(root: Path, mode: str, requests: int, env: dict[str, str],
                   work_dir: Path) -> dict[str, Any]:
    """One run: gunicorn from ``root`` in ``mode``, warmed up, then loaded."""
    from tests.support.processes import ManagedProcess, free_port, wait_for_port

    port = free_port()
    name = f"{root.name}-{mode}-{uuid.uuid4().hex[:6]}"
    env = {**env, "EXECLOG_BACKEND": "celery", "EXECLOG_DURABILITY": mode,
           "WEBAPP_VAR_DIR": str(work_dir / name), "GUNICORN_BIND": f"127.0.0.1:{port}",
           "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "8", "GUNICORN_LOGLEVEL": "warning",
           "PYTHONPATH": str(ROOT / "bench"), "PYTHONUNBUFFERED": "1"}
    # Started in ``root``: gunicorn puts its working directory on sys.path
    # and its config imports webapp before --chdir would count.
    argv = [str(root / ".venv" / "bin" / "gunicorn"), "-c", "docker/gunicorn.conf.py",
            "log_waits:create_waits_app()"]
    web = ManagedProcess(f"gunicorn-{name}", argv, env, work_dir / f"{name}.log", cwd=root)
    web.start()
    try:
        wait_for_port(port, timeout=60)
        load(port, f"{name}-warmup", CONCURRENCY * 4, work_dir)
        return load(port, name, requests, work_dir)
    finally:
        web.stop(timeout=60)


def load(port: int, run: str, requests: int, work_dir: Path) -> dict[str, Any]:
    import subprocess

    out = work_dir / f"{run}.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "loadgen.py"), "--port", str(port),
                    "--path", "/bench/waits", "--requests", str(requests), "--concurrency", str(CONCURRENCY),
                    "--records", str(RECORDS), "--run", run, "--out", str(out)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of first and other calls that waited, and their CPU, over
    the runs of one checkout and mode."""
    from bench.measure import percentile

    first_waits, other_waits, first_cpu, all_cpu, rates = [], [], [], [], []
    for run in runs:
        rates.append(sum(run["statuses"].values()) / run["elapsed"])
        for waits, cpu in zip(run["log_waits"], run["log_cpu_by_request"]):
            first_waits.append(waits[0] > 0)
            other_waits.extend(w > 0 for w in waits[1:])
            first_cpu.append(cpu[0] / 1000)
            all_cpu.extend(c / 1000 for c in cpu)
    return {
        "requests_per_s": statistics.median(rates),
        "first_calls": len(first_waits),
        "first_waited": sum(first_waits) / len(first_waits),
        "other_waited": sum(other_waits) / len(other_waits),
        "first_cpu_p50_us": percentile(first_cpu, 0.50),
        "cpu_p50_us": percentile(all_cpu, 0.50),
        "cpu_p99_us": percentile(all_cpu, 0.99),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = ["`log()` calls that waited (a voluntary context switch during the call), the web tier alone, "
             f"saturated ({CONCURRENCY} connections, {RECORDS} records a request)", "",
             "| checkout | durability | req/s | 1st calls that waited | other calls that waited "
             "| 1st call CPU p50 us | log() CPU p50 us | log() CPU p99 us |",
             "|---|---|---|---|---|---|---|---|"]
    for row in results:
        lines.append(f"| {row['checkout']} | {row['mode']} | {row['requests_per_s']:.0f} "
                     f"| {row['first_waited']:.1%} of {row['first_calls']:,} | {row['other_waited']:.2%} "
                     f"| {row['first_cpu_p50_us']:.1f} | {row['cpu_p50_us']:.1f} | {row['cpu_p99_us']:.1f} |")
    return "\n".join(lines)


def checkout_name(root: Path) -> str:
    import subprocess

    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return f"{commit}{' (changed)' if dirty else ''}" or root.name


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.log_call import save
    from bench.run import clear_broker, prepare_database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="memory,disk")
    parser.add_argument("--root", action="append", type=Path, help="a checkout to serve (default: this one)")
    parser.add_argument("--database-url",
                        default="postgresql+psycopg2://postgres@127.0.0.1:5432/webapp_bench_waits")
    parser.add_argument("--admin-dsn", default="dbname=postgres user=postgres host=127.0.0.1")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"))
    parser.add_argument("--out", help="also write the table to <stamp>-log_waits.md in this directory")
    args = parser.parse_args()
    roots = [root.resolve() for root in args.root or [ROOT]]
    modes = args.modes.split(",")
    work_dir = Path(f"/tmp/webapp-log-waits-{uuid.uuid4().hex[:8]}")
    work_dir.mkdir(parents=True)
    prepare_database(args.database_url, args.admin_dsn, work_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXECLOG_", "CELERY_", "GUNICORN_"))}
    env.update(DATABASE_URL=args.database_url, CELERY_BROKER_URL=args.redis_url)
    cases = [(root, mode) for mode in modes for root in roots]
    runs: dict[tuple[Path, str], list[dict[str, Any]]] = {case: [] for case in cases}
    for round_ in range(args.rounds):
        for root, mode in cases[round_ % len(cases):] + cases[:round_ % len(cases)]:
            clear_broker(args.redis_url)
            runs[root, mode].append(serve_and_load(root, mode, args.requests, env, work_dir))
            clear_broker(args.redis_url)
    results = [{"checkout": checkout_name(root), "mode": mode, **figures(found)}
               for (root, mode), found in runs.items()]
    text = table(results)
    print(text)
    if args.out:
        save(args.out, "log_waits", text, results)


if __name__ == "__main__":
    main()
