"""``make bench``: the logging back ends side by side, in one run, on this machine.

    .venv/bin/python bench/run.py [--tiny] [--out bench/results]

For each back end (``direct``, the design being replaced; ``thread``, an
in-process batch writer; ``celery`` with memory and with disk durability;
and the same requests with logging disabled), the real app runs under the
project's gunicorn config and a load generator on loopback sends a fixed
number of requests, each logging K records (``bench/app.py``). Measured:
requests/s and request latency; the cost of one ``log()`` inside the
request; peak PostgreSQL backends of the web tier and in all; committed
transactions per 1,000 records; end-to-end records/s until every record is
in the table; the delay from ``log()`` to the row being visible; errors.
Then: the roadmap workflow through Celery with each back end, a
pool-exhaustion run (``direct`` against ``celery`` at high concurrency with
the app's normal pool settings), and the raw ceiling of PostgreSQL itself.

It creates (and drops at the start of the next run) its own database,
``webapp_bench``, and uses Redis database 2. Results: a markdown report and
a PNG chart in ``--out`` (``latest.md`` and ``latest.png`` too).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg2  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench import ceiling, producer, report  # noqa: E402
from bench.measure import BackendSampler, VisibilityWatcher, percentile, run_traces  # noqa: E402
from tests.support.processes import (  # noqa: E402
    BIN, ManagedProcess, children, free_port, start_celery_worker, wait_for_port,
)

QUEUE_KEYS = ("logs", "workflows", "unacked", "unacked_index", "unacked_mutex")


@dataclass(frozen=True)
class Backend:
    name: str
    env: dict[str, str]
    log: bool = True

    @property
    def ships_through_celery(self) -> bool:
        """Its records need a worker to reach the table."""
        return self.env["EXECLOG_BACKEND"] == "celery" and self.env.get("BENCH_LOGGER") != "direct"

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name).strip("-")


BACKENDS = [
    Backend("no logging", {"EXECLOG_BACKEND": "celery"}, log=False),
    Backend("direct", {"EXECLOG_BACKEND": "celery", "BENCH_LOGGER": "direct"}),
    Backend("thread", {"EXECLOG_BACKEND": "thread", "EXECLOG_DURABILITY": "memory"}),
    Backend("celery (memory)", {"EXECLOG_BACKEND": "celery", "EXECLOG_DURABILITY": "memory"}),
    Backend("celery (disk)", {"EXECLOG_BACKEND": "celery", "EXECLOG_DURABILITY": "disk"}),
]


def rabbitmq_backend() -> Backend | None:
    """``celery (memory)`` on RabbitMQ (a virtual host of this run's own on
    the machine's broker), or None where RabbitMQ cannot be used."""
    try:
        vhost = producer.rabbitmq_vhost(f"run-{uuid.uuid4().hex[:8]}")
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"no RabbitMQ row: {exc}", flush=True)
        return None
    return Backend("celery (memory), RabbitMQ", {"EXECLOG_BACKEND": "celery", "EXECLOG_DURABILITY": "memory",
                                                 "CELERY_BROKER_URL": f"{producer.RABBITMQ_URL}/{vhost}"})


#: The celery back end tuned for throughput: batches start at 500 records.
BIG_BATCHES = Backend("celery (memory), batches of 500",
                      {"EXECLOG_BACKEND": "celery", "EXECLOG_DURABILITY": "memory",
                       "EXECLOG_BATCH_SIZE": "500"})


@dataclass(frozen=True)
class Sizes:
    requests: int = 2000
    concurrency: int = 16
    records: int = 50
    web_workers: int = 2
    web_threads: int = 8
    celery_concurrency: int = 2
    workflows: int = 40
    exhaustion_requests: int = 320
    exhaustion_concurrency: int = 64
    exhaustion_threads: int = 32
    ceiling_rows: int = 100_000
    repeats: int = 3
    steady_rate: float = 100
    steady_requests: int = 1500
    producer_records: int = 40_000


TINY = Sizes(requests=40, concurrency=4, records=10, workflows=2, exhaustion_requests=24, repeats=1,
             steady_rate=20, steady_requests=20, producer_records=2000,
             exhaustion_concurrency=8, exhaustion_threads=4, ceiling_rows=30_000)


@dataclass
class Bench:
    sizes: Sizes
    database_url: str
    admin_dsn: str
    redis_url: str
    work_dir: Path
    logs: list[str] = field(default_factory=list)

    @property
    def database(self) -> str:
        return sa.make_url(self.database_url).database

    @property
    def dsn(self) -> str:
        url = sa.make_url(self.database_url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def env(self, backend: Backend, var: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("EXECLOG_", "CELERY_", "GUNICORN_", "DATABASE_URL", "REDIS_URL"))}
        env.update(DATABASE_URL=self.database_url, CELERY_BROKER_URL=self.redis_url,
                   WEBAPP_VAR_DIR=str(self.work_dir / var), PYTHONUNBUFFERED="1")
        env.update(backend.env)
        env.update(extra)
        return env

    # -- services --------------------------------------------------------

    def gunicorn(self, env: dict[str, str], name: str, threads: int) -> tuple[ManagedProcess, int]:
        port = free_port()
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(self.sizes.web_workers),
               "GUNICORN_THREADS": str(threads), "GUNICORN_LOGLEVEL": "warning"}
        argv = [str(BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py", "bench.app:app"]
        process = ManagedProcess(f"gunicorn-{name}", argv, env, self.work_dir / f"{name}-web.log")
        process.start()
        wait_for_port(port, timeout=60)
        return process, port

    def worker(self, env: dict[str, str], name: str) -> ManagedProcess:
        return start_celery_worker(env, self.work_dir / f"{name}-worker.log", name=f"bench-{name}",
                                   concurrency=self.sizes.celery_concurrency, app="bench.worker")

    def loadgen(self, port: int, path: str, run: str, requests: int, concurrency: int,
                watcher: VisibilityWatcher | None, rate: float = 0) -> dict[str, Any]:
        out = self.work_dir / f"{run}.json"
        argv = [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--port", str(port), "--path", path,
                "--requests", str(requests), "--concurrency", str(concurrency),
                "--records", str(self.sizes.records), "--run", run, "--out", str(out),
                "--rate", str(rate)]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
            assert process.stdout is not None
            for line in process.stdout:
                if watcher is not None and line.strip():
                    watcher.watch(line.strip())
        if process.returncode != 0:
            raise RuntimeError(f"the load generator failed ({process.returncode})")
        return json.loads(out.read_text())

    # -- the scenarios ---------------------------------------------------

    def http_run(self, backend: Backend, *, threads: int | None = None, requests: int | None = None,
                 concurrency: int | None = None, hold: bool = False, rate: float = 0,
                 label: str = "http") -> dict[str, Any]:
        """The HTTP workload on one back end; its figures. ``hold``: each
        request also holds a connection of the app's pool (bench/app.py);
        ``rate``: requests per second, open loop (0: as fast as it goes)."""
        sizes = self.sizes
        threads = threads or sizes.web_threads
        requests = requests or sizes.requests
        concurrency = concurrency or sizes.concurrency
        name = f"{label}-{backend.slug}"
        env = self.env(backend, name)
        path = f"/bench/work?log={int(backend.log)}&hold={int(hold)}"
        worker = self.worker(env, name) if backend.ships_through_celery else None
        web, port = self.gunicorn(env, name, threads)
        sampler = BackendSampler(self.admin_dsn, self.database)
        watcher = VisibilityWatcher(self.dsn)
        try:
            # Warm up the whole path (imports, connections, the flushers) with
            # requests of the same kind; their records go to traces of their own.
            warmup = f"warmup-{uuid.uuid4().hex[:6]}"
            warm = self.loadgen(port, path, warmup, concurrency * 4, concurrency, None)
            self._wait_visible(watcher, run_traces(warmup, concurrency * 4),
                               warm["statuses"].get("200", 0) * sizes.records * backend.log)
            run = f"bench-{name}-{uuid.uuid4().hex[:8]}"
            commits_before = sampler.commits()
            sampler.start()
            watcher.start()
            cpu_before, flusher_before = web_cpu_seconds(web), flusher_cpu_seconds(port)
            started = time.time()
            load = self.loadgen(port, path, run, requests, concurrency, watcher, rate)
            web_cpu = web_cpu_seconds(web) - cpu_before
            flusher_cpu = flusher_cpu_seconds(port) - flusher_before
            ok = load["statuses"].get("200", 0)
            expected = ok * sizes.records if backend.log else 0
            visible_at = self._wait_visible(watcher, run_traces(run, requests), expected)
            watcher.finish(timeout=30)
            peaks = sampler.stop()
        finally:
            web.stop(timeout=60)
            if worker is not None:
                worker.stop(timeout=60)
        watcher.close()
        sampler.wait_until_gone()
        commits = sampler.commits() - commits_before - watcher.queries
        sampler.close()
        records = expected
        return {
            **load_figures(backend, load, requests, records, web_cpu, flusher_cpu),
            "log_p50_us": percentile(load["log_ns"], 0.50) / 1000 if backend.log else None,
            "log_p99_us": percentile(load["log_ns"], 0.99) / 1000 if backend.log else None,
            "log_cpu_mean_us": statistics.fmean(load["log_cpu_ns"]) / 1000 if backend.log else None,
            "web_backends_peak": peaks.web,
            "total_backends_peak": peaks.total,
            "worker_backends_peak": peaks.workers,
            "transactions_per_1000": commits / records * 1000 if records else None,
            "end_to_end_records_per_s": records / (visible_at - started) if records else None,
            "visible_p50_s": percentile(watcher.delays, 0.50) if backend.log else None,
            "visible_p99_s": percentile(watcher.delays, 0.99) if backend.log else None,
            "errors": requests - ok,
            "records": records,
            "statuses": load["statuses"],
            "socket_errors": load["errors"][:5],
        }

    def isolated_run(self, backend: Backend, *, rate: float = 0,
                     requests: int | None = None) -> dict[str, Any]:
        """The web tier alone: the HTTP workload while no worker consumes, as
        when the workers run on other hosts. The batches wait in Redis; once
        gunicorn has stopped (and flushed), they are counted there, then a
        worker drains them and every record is found in the table."""
        sizes = self.sizes
        requests = requests or sizes.requests
        name = f"isolated-{backend.slug}-{uuid.uuid4().hex[:4]}"
        env = self.env(backend, name)
        path = f"/bench/work?log={int(backend.log)}&hold=0"
        clear_broker(self.redis_url)
        web, port = self.gunicorn(env, name, sizes.web_threads)
        run = f"bench-{name}"
        try:
            warm = self.loadgen(port, path, f"{run}-warmup", sizes.concurrency * 4, sizes.concurrency, None)
            cpu_before, flusher_before = web_cpu_seconds(web), flusher_cpu_seconds(port)
            load = self.loadgen(port, path, run, requests, sizes.concurrency, None, rate)
            web_cpu = web_cpu_seconds(web) - cpu_before
            flusher_cpu = flusher_cpu_seconds(port) - flusher_before
        finally:
            web.stop(timeout=60)
        ok = load["statuses"].get("200", 0)
        logged = (warm["statuses"].get("200", 0) + ok) * sizes.records if backend.log else 0
        queued = queued_records(self.redis_url)
        traces = run_traces(f"{run}-warmup", sizes.concurrency * 4) + run_traces(run, requests)
        stored = self._drain(env, name, traces, logged) if backend.log else 0
        records = ok * sizes.records if backend.log else 0
        return {
            **load_figures(backend, load, requests, records, web_cpu, flusher_cpu),
            "records_logged": logged,
            "records_queued": queued,
            "records_stored": stored,
            "errors": requests - ok,
            "statuses": load["statuses"],
            "socket_errors": load["errors"][:5],
        }

    def _drain(self, env: dict[str, str], name: str, traces: list[str], expected: int) -> int:
        """Start a worker, wait until the ``expected`` records of these
        traces (the run's and its warm-up's) are in the table, stop it; how
        many are there."""
        watcher = VisibilityWatcher(self.dsn)
        worker = self.worker(env, f"{name}-drain")
        try:
            self._wait_visible(watcher, traces, expected)
            return watcher.count(traces)
        finally:
            worker.stop(timeout=60)
            watcher.close()

    def _wait_visible(self, watcher: VisibilityWatcher, traces: list[str], expected: int) -> float:
        deadline = time.monotonic() + 600
        while watcher.count(traces) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{traces[0]}...: not every record arrived within 10 minutes")
            time.sleep(0.1)
        return time.time()

    def workflow_run(self, backend: Backend) -> dict[str, Any]:
        """Roadmap executions through Celery, the worker logging with ``backend``."""
        from webapp import create_app
        from webapp.config import config_from_env
        from webapp.workflow.service import start_execution

        name = f"workflow-{backend.slug}"
        env = self.env(backend, name)
        worker = self.worker(env, name)
        app = create_app(config_from_env({"DATABASE_URL": self.database_url,
                                          "CELERY_BROKER_URL": self.redis_url,
                                          "WEBAPP_VAR_DIR": str(self.work_dir / f"{name}-client")}))
        engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)
        goal = "I want to learn Python for data analysis, 6 hours a week, in 3 months"
        try:
            started = time.time()
            with app.app_context():
                ids = [str(start_execution("roadmap", {"goal": goal}).id)
                       for _ in range(self.sizes.workflows)]
            done = self._wait_executions(engine, ids)
            elapsed = time.time() - started
            self._wait_logs(engine, ids)
        finally:
            worker.stop(timeout=60)
        with engine.connect() as connection:
            statuses = dict(connection.execute(sa.text(
                "SELECT status, count(*) FROM executions WHERE id::text = ANY(:ids) GROUP BY 1"),
                {"ids": ids}).all())
            records = connection.execute(sa.text(
                "SELECT count(*) FROM execution_logs WHERE trace_id = ANY(:ids)"), {"ids": ids}).scalar_one()
        engine.dispose()
        app.extensions["execlog"].close()
        return {"backend": backend.name, "executions": len(ids),
                "succeeded": statuses.get("succeeded", 0), "seconds": elapsed,
                "executions_per_s": done / elapsed if elapsed else None, "records": records}

    def _wait_logs(self, engine: sa.engine.Engine, ids: list[str]) -> None:
        """Wait, with the worker still consuming, until every record the
        runs counted is stored (their last batch ships after they end)."""
        deadline = time.monotonic() + 120
        query = sa.text(
            "SELECT (SELECT coalesce(sum(emitted - dropped), 0) FROM execution_log_counts "
            "        WHERE execution_id::text = ANY(:ids)), "
            "       (SELECT count(*) FROM execution_logs WHERE trace_id = ANY(:ids) AND attempt IS NOT NULL)")
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                emitted, stored = connection.execute(query, {"ids": ids}).one()
            if stored >= emitted:
                return
            time.sleep(0.2)

    def _wait_executions(self, engine: sa.engine.Engine, ids: list[str]) -> int:
        deadline = time.monotonic() + 600
        query = sa.text("SELECT count(*) FROM executions WHERE id::text = ANY(:ids) "
                        "AND status IN ('succeeded', 'failed')")
        while True:
            with engine.connect() as connection:
                finished = connection.execute(query, {"ids": ids}).scalar_one()
            if finished == len(ids) or time.monotonic() > deadline:
                return finished
            time.sleep(0.2)


#: Figures of repeated runs that add up, or whose worst is the point.
_SUMMED = ("requests", "records", "errors", "records_logged", "records_queued", "records_stored")
_PEAKS = ("web_backends_peak", "total_backends_peak", "worker_backends_peak")


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One back end's figures over repeated runs: the median of each, the
    peaks' maximum, the sums of counts."""
    row: dict[str, Any] = {"backend": runs[0]["backend"], "runs": len(runs)}
    for key, value in runs[0].items():
        values = [run[key] for run in runs if run[key] is not None]
        if key in row or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key in _SUMMED:
            row[key] = sum(values)
        elif key in _PEAKS:
            row[key] = max(values)
        else:
            row[key] = statistics.median(values) if values else None
    row["statuses"] = {status: sum(run["statuses"].get(status, 0) for run in runs)
                       for status in {s for run in runs for s in run["statuses"]}}
    row["socket_errors"] = [error for run in runs for error in run["socket_errors"]][:5]
    for key in runs[0]:
        row.setdefault(key, None)  # a figure no run had
    return row


Rows = list[dict[str, Any]]


def worker_tier(bench: Bench, database_url: str, sizes: Sizes) -> tuple[Rows, Rows]:
    """PostgreSQL alone and the worker tier draining a backlog, taking turns
    ``sizes.repeats`` times: each figure is the median of its runs, and each
    drain's ratio to COPY alone the median of the ratios of the same round."""
    rounds = []
    for _ in range(sizes.repeats):
        alone = ceiling.measure(database_url, sizes.ceiling_rows)
        drains = [drain_run(bench, sizes.ceiling_rows, concurrency, prefetch)
                  for concurrency, prefetch in DRAINS]
        for drain in drains:
            copy = next(row for row in alone
                        if row["method"] == "COPY" and row["connections"] == drain["processes"])
            drain["copy_ratio"] = drain["rows_per_s"] / copy["rows_per_s"]
        rounds.append((alone, drains))
    alone_rows = [[run[i] for run, _ in rounds] for i in range(len(rounds[0][0]))]
    drain_rows = [[run[i] for _, run in rounds] for i in range(len(rounds[0][1]))]
    median = statistics.median
    return ([{**runs[0], "rows_per_s": median(r["rows_per_s"] for r in runs)} for runs in alone_rows],
            [{**runs[0], "runs": len(runs), "rows_per_s": median(r["rows_per_s"] for r in runs),
              "seconds": median(r["seconds"] for r in runs),
              "copy_ratio": median(r["copy_ratio"] for r in runs)} for runs in drain_rows])


#: The drains: (worker processes, prefetch multiplier). Celery's default
#: multiplier, 4 (the app's ``CELERY_PREFETCH_MULTIPLIER`` default), lets a
#: worker hold batches while its processes are busy, which it stores
#: together; with 1 (``scripts/start_celery_worker.sh`` beside
#: ``workflows``) it holds none, and each job stores one batch.
DRAINS = ((1, 4), (2, 4), (1, 1))


def drain_run(bench: Bench, rows: int, concurrency: int, prefetch: int) -> dict[str, Any]:
    """The worker tier alone: ``rows`` records queued in batches of
    :data:`ceiling.BATCH` (COPY alone's) while no worker runs, then one worker with ``concurrency`` processes
    (and that ``prefetch`` multiplier) drains them; rows/s from the first
    batch stored to the last, of the rows stored in that time (not those of
    the first batches)."""
    from webapp import create_app
    from webapp.config import config_from_env
    from webapp.execlog.sinks import CelerySink

    name = f"drain-{concurrency}-prefetch-{prefetch}"
    trace = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    app = create_app(config_from_env({
        "DATABASE_URL": bench.database_url, "CELERY_BROKER_URL": bench.redis_url,
        "WEBAPP_VAR_DIR": str(bench.work_dir / f"{name}-client"),
    }))
    sink = CelerySink(app.extensions["celery"])
    batch = ceiling.make_rows(rows, trace)
    size = ceiling.BATCH
    for start in range(0, rows, size):
        sink.send([orjson.dumps(row) for row in batch[start:start + size]])
    app.extensions["execlog"].close()
    env = bench.env(BACKENDS[3], name, CELERY_PREFETCH_MULTIPLIER=str(prefetch))
    watcher = VisibilityWatcher(bench.dsn)
    worker = start_celery_worker(env, bench.work_dir / f"{name}-worker.log", name=f"bench-{name}",
                                 concurrency=concurrency)
    # When the first message is stored and when the last one is: probes of
    # their rows' ids (with two processes, of the first two and the last
    # two), then one count. Counting the trace at every poll would take
    # the database's CPU from the drain it measures.
    first_ids = [batch[0][0], batch[min(size, rows - 1)][0]]
    last_ids = [batch[-1][0], batch[max(0, rows - size - 1)][0]]
    try:
        while watcher.visible(first_ids) == 0:
            time.sleep(0.01)
        first = time.time()
        # Counted once the clock runs: a first job may store several batches.
        before_clock = watcher.count([trace])
        while watcher.visible(last_ids) < len(set(last_ids)):
            time.sleep(0.01)
        while (stored := watcher.count([trace])) < rows:
            time.sleep(0.01)
        elapsed = time.time() - first
    finally:
        worker.stop(timeout=60)
        watcher.close()
    timed = stored - before_clock
    if timed <= 0:
        raise RuntimeError(f"{name}: all {rows:,} rows were stored before the clock started; queue more")
    return {"processes": concurrency, "prefetch": prefetch, "rows": stored, "seconds": elapsed,
            "rows_per_s": timed / elapsed}


def flusher_cpu_seconds(port: int) -> float:
    """``execlog_flusher_cpu_seconds_total`` of the web tier (its /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("execlog_flusher_cpu_seconds_total "):
                return float(line.split()[1])
    return 0.0


def web_cpu_seconds(master: ManagedProcess) -> float:
    """CPU time (user and system) of the gunicorn worker processes so far."""
    total = 0
    for pid in children(master.pid):
        try:
            with open(f"/proc/{pid}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def prepare_database(url: str, admin_dsn: str, work_dir: Path) -> None:
    """Drop and create the bench database (ours), then migrate it."""
    database = sa.make_url(url).database
    connection = psycopg2.connect(admin_dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{database}"')
    connection.close()
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "DATABASE_URL": url,
                                             "WEBAPP_VAR_DIR": str(work_dir / "migrate")})


def queued_records(url: str, queue: str = "logs") -> int:
    """The log records waiting in a Redis ``queue`` (every message decoded)."""
    client = redis.Redis.from_url(url)
    total = 0
    for raw in client.lrange(queue, 0, -1):
        envelope = orjson.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        (_version, rows), _kwargs, _embed = orjson.loads(body)
        total += len(rows)
    return total


def clear_broker(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.delete(*QUEUE_KEYS)
    for key in client.scan_iter("_kombu.*"):
        client.delete(key)


def machine() -> str:
    settings = {}
    with psycopg2.connect("dbname=postgres user=postgres host=127.0.0.1") as connection:
        with connection.cursor() as cursor:
            for name in ("server_version", "fsync", "synchronous_commit", "max_connections"):
                cursor.execute(f"SHOW {name}")
                settings[name] = cursor.fetchone()[0]
    return (f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}, PostgreSQL {settings['server_version']} "
            f"(fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']}), "
            f"Redis on loopback")


def write_report(out: Path, command: str, sizes: Sizes, results: dict[str, list[dict]],
                 readme: Path | None = None) -> Path:
    """``latest.md`` (and a timestamped copy, with the figures as JSON), and
    the summary section of ``readme`` when given."""
    http, steady, workflows = results["http"], results["steady"], results["workflows"]
    exhaustion, drains, ceiling_rows = results["exhaustion"], results["drains"], results["ceiling"]
    for row in http:
        if row.get("log_cpu_mean_us") is not None and row.get("flusher_cpu_us_per_record") is not None:
            row["producer_cpu_us_per_record"] = row["log_cpu_mean_us"] + row["flusher_cpu_us_per_record"]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    text = "\n".join([
        f"# Benchmark {stamp}",
        "",
        f"Machine: {machine()}.",
        f"Command: `{command}`",
        f"Each figure of the back ends is the median of {sizes.repeats} runs (peaks: the highest; "
        "errors: the total), the back ends taking turns.",
        f"Workload: gunicorn (`docker/gunicorn.conf.py`, {sizes.web_workers} workers x {sizes.web_threads} "
        f"threads, gthread), {sizes.requests} requests from {sizes.concurrency} keep-alive connections on "
        f"loopback, each logging {sizes.records} records (`bench/app.py`); "
        f"Celery: {sizes.celery_concurrency} prefork processes on the same machine.",
        "",
        "## Targets",
        "",
        report.targets_table(results),
        "",
        report.producer_section(results["producer"], sizes.producer_records, sizes.repeats),
        "",
        report.isolated_section(results["isolated"], results["isolated_steady"], sizes),
        "",
        "## Back ends, with the worker on the same cores",
        "",
        report.table(http, report.COLUMNS),
        "",
        "The requests touch the database only through logging, so the web tier's backends are "
        "logging's. `log()` wall time includes waiting for the GIL behind the process's other "
        "threads; its CPU time is the calling thread's own (`thread_time_ns`, which costs about "
        "0.6 us itself); both are taken in one request of ten (`bench/app.py`), so that the "
        "clocks' own cost stays out of the requests' figures. Producer CPU per record: the mean "
        "CPU of `log()` plus the flusher threads' "
        "CPU (encoding, publishing or inserting; `execlog_flusher_cpu_seconds_total`) per record; "
        "web CPU: the gunicorn worker processes' user and system time. Transactions count commits "
        "in the bench database, the benchmark's own queries taken out (PostgreSQL may report some "
        "of the warm-up's late: well under 1 per 1,000 records). Each run starts with a warm-up of "
        "the same requests, not counted.",
        "",
        report.ratios(http),
        "",
        report.overhead(http),
        "",
        "![latency and connections](latest.png)",
        "",
        f"## At a steady {sizes.steady_rate:.0f} requests/s ({sizes.steady_rate * sizes.records:,.0f} "
        "records/s), open loop",
        "",
        "The runs above send requests as fast as the server answers, so every tier on this machine "
        "is saturated and a queue builds between them; here the same requests arrive on a schedule "
        f"the back ends can keep up with ({sizes.steady_requests} requests a run; medians of "
        f"{sizes.repeats} runs, taking turns).",
        "",
        report.table(steady, [("backend", "back end", "{}"), ("requests_per_s", "req/s", "{:,.0f}"),
                              ("latency_p50_ms", "request p50 ms", "{:.1f}"),
                              ("latency_p99_ms", "request p99 ms", "{:.1f}"),
                              ("log_cpu_p50_us", "log() CPU p50 us", "{:.1f}"),
                              ("log_cpu_p99_us", "log() CPU p99 us", "{:.1f}"),
                              ("flusher_cpu_us_per_record", "flusher CPU us / record", "{:.1f}"),
                              ("visible_p50_s", "log()->visible p50 s", "{:.2f}"),
                              ("visible_p99_s", "log()->visible p99 s", "{:.2f}"),
                              ("transactions_per_1000", "transactions / 1,000 records", "{:,.1f}"),
                              ("errors", "errors", "{}")]),
        "",
        f"## The roadmap workflow through Celery ({sizes.workflows} executions)",
        "",
        report.table(workflows, [("backend", "worker logs with", "{}"), ("executions", "executions", "{}"),
                                 ("succeeded", "succeeded", "{}"), ("seconds", "seconds", "{:.1f}"),
                                 ("executions_per_s", "executions/s", "{:.1f}"),
                                 ("records", "log records stored", "{:,}")]),
        "",
        f"## Pool exhaustion ({sizes.exhaustion_requests} requests, {sizes.exhaustion_concurrency} "
        f"connections, {sizes.exhaustion_threads} threads per gunicorn worker, the app's pool settings)",
        "",
        report.table(exhaustion, [("backend", "back end", "{}"), ("requests_per_s", "req/s", "{:,.0f}"),
                                  ("latency_p99_ms", "request p99 ms", "{:.0f}"),
                                  ("errors", "failed requests", "{}"),
                                  ("web_backends_peak", "web-tier backends (peak)", "{}")]),
        "",
        f"## The worker tier alone: a backlog of {sizes.ceiling_rows:,} records drained",
        "",
        f"Queued in batches of {ceiling.BATCH:,} while no worker runs, then one Celery worker (prefork) "
        "stores them "
        "through the real task; rows/s from the first batch stored to the last, of the rows stored in "
        "between (PostgreSQL alone, below, is timed from its first batch to its last commit, its "
        "processes started and connected before). With a prefetch multiplier above 1, the batches a "
        "worker holds while its processes are busy are stored together, in one COPY. The two "
        f"take turns, {sizes.repeats} times: medians, and the median of each round's ratio.",
        "",
        report.table(drains, [("processes", "worker processes", "{}"),
                              ("prefetch", "prefetch multiplier", "{}"), ("rows", "rows", "{:,}"),
                              ("seconds", "seconds", "{:.2f}"), ("rows_per_s", "rows/s", "{:,.0f}"),
                              ("copy_ratio", "against COPY alone, as many connections", "x{:.2f}")]),
        "",
        f"## PostgreSQL alone ({sizes.ceiling_rows:,} rows, batches of {ceiling.BATCH})",
        "",
        report.table(ceiling_rows, [("method", "method", "{}"), ("connections", "connections", "{}"),
                                    ("rows_per_s", "rows/s", "{:,.0f}")]),
        "",
    ])
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stamp}.md"
    path.write_text(text)
    (out / "latest.md").write_text(text)
    report.chart(http, out / "latest.png")
    report.chart(http, out / f"{stamp}.png")
    (out / f"{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    if readme is not None:
        report.update_readme(readme, results, sizes, f"bench/results/{stamp}.md")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few requests: checks the harness works")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/webapp_bench"))
    parser.add_argument("--admin-dsn", default=os.environ.get(
        "BENCH_ADMIN_DSN", "dbname=postgres user=postgres host=127.0.0.1"))
    parser.add_argument("--redis-url",
                        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"))
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()
    sizes = TINY if args.tiny else Sizes()
    work_dir = Path(args.work_dir or f"/tmp/webapp-bench-{uuid.uuid4().hex[:8]}")
    work_dir.mkdir(parents=True, exist_ok=True)
    prepare_database(args.database_url, args.admin_dsn, work_dir)
    clear_broker(args.redis_url)
    bench = Bench(sizes, args.database_url, args.admin_dsn, args.redis_url, work_dir)

    results: dict[str, list[dict[str, Any]]] = {}
    results["producer"] = producer.measure(sizes.producer_records, sizes.repeats, redis_url=args.redis_url)
    isolated = [BACKENDS[0], BACKENDS[3], BACKENDS[4]]
    results["isolated"] = take_turns(isolated, sizes.repeats, bench.isolated_run)
    results["isolated_steady"] = take_turns(isolated, sizes.repeats, lambda backend: bench.isolated_run(
        backend, rate=sizes.steady_rate, requests=sizes.steady_requests))
    rabbitmq = rabbitmq_backend()
    with_rabbitmq = [*BACKENDS, *([rabbitmq] if rabbitmq else [])]
    results["http"] = take_turns(with_rabbitmq, sizes.repeats, bench.http_run)
    for row in results["http"]:
        print(f"{row['backend']:16} {row['requests_per_s']:8.0f} req/s  "
              f"p99 {row['latency_p99_ms']:7.1f} ms  errors {row['errors']}", flush=True)
    # One run's p99 is its 15th slowest request: the steady runs take turns
    # and are combined like the saturated ones.
    results["steady"] = take_turns([BACKENDS[0], *BACKENDS[2:], BIG_BATCHES], sizes.repeats,
                                   lambda backend: bench.http_run(backend, requests=sizes.steady_requests,
                                                                  rate=sizes.steady_rate, label="steady"))
    results["workflows"] = [bench.workflow_run(backend) for backend in BACKENDS if backend.log]
    exhaustion_sizes = dict(threads=sizes.exhaustion_threads, requests=sizes.exhaustion_requests,
                            concurrency=sizes.exhaustion_concurrency, hold=True, label="exhaustion")
    results["exhaustion"] = [bench.http_run(backend, **exhaustion_sizes)
                             for backend in (BACKENDS[1], BACKENDS[3])]
    results["ceiling"], results["drains"] = worker_tier(bench, args.database_url, sizes)
    command = "bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path = write_report(Path(args.out), command.strip(), sizes, results,
                        readme=None if args.tiny else ROOT / "README.md")
    print(path.read_text())


def load_figures(backend: Backend, load: dict[str, Any], requests: int, records: int, web_cpu: float,
                 flusher_cpu: float) -> dict[str, Any]:
    """The figures of one load every scenario reports."""
    latencies = [s * 1000 for s in load["latencies"]]
    log_cpu_ns, first_ns = load["log_cpu_ns"], load["log_cpu_first_ns"]
    # The other calls: each timed request's list without its first value.
    others_ns = sorted(log_cpu_ns)
    for value in first_ns:
        others_ns.pop(bisect.bisect_left(others_ns, value))
    return {
        "backend": backend.name,
        "requests": requests,
        "requests_per_s": len(load["latencies"]) / load["elapsed"],
        "latency_p50_ms": percentile(latencies, 0.50),
        "latency_p99_ms": percentile(latencies, 0.99),
        "log_cpu_p50_us": percentile(log_cpu_ns, 0.50) / 1000 if backend.log else None,
        "log_cpu_p99_us": percentile(log_cpu_ns, 0.99) / 1000 if backend.log else None,
        "log_cpu_first_p99_us": percentile(first_ns, 0.99) / 1000 if backend.log else None,
        "log_cpu_others_p99_us": percentile(others_ns, 0.99) / 1000 if backend.log else None,
        "web_cpu_ms_per_request": web_cpu / requests * 1000,
        "flusher_cpu_us_per_record": flusher_cpu / records * 1e6 if records else None,
    }


def take_turns(backends: list[Backend], repeats: int, measure: Any) -> list[dict[str, Any]]:
    """``measure(backend)`` for each back end in turn, ``repeats`` times (so
    that a slow spell of the machine hits all alike); their medians."""
    runs: dict[str, list[dict[str, Any]]] = {backend.name: [] for backend in backends}
    for _ in range(repeats):
        for backend in backends:
            runs[backend.name].append(measure(backend))
    return [combine(runs[backend.name]) for backend in backends]


if __name__ == "__main__":
    main()
