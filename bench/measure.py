"""What the benchmark watches in PostgreSQL while a load runs.

* :class:`BackendSampler`: every 100 ms, the backends of the bench database
  by ``application_name`` (the web tier is ``webapp-web*``, the workers
  ``webapp-worker*``), keeping the peaks; and the database's committed
  transactions (``pg_stat_database.xact_commit``). It connects to the
  ``postgres`` database, so its own queries are not counted.
* :class:`VisibilityWatcher`: the first record id of every answered request
  (the load generator prints them) is watched until its row is visible;
  the delay is measured from the record's own time, which its UUIDv7 id
  carries. Its queries run in the bench database and are counted, so that
  they can be taken out of the transaction count.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg2

POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.1


def percentile(values: Iterable[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def uuid7_time(record_id: str) -> float:
    """Unix seconds a UUIDv7 was made at (with its sub-millisecond bits)."""
    value = uuid.UUID(record_id).int
    ms = value >> 80
    fraction = (value >> 64) & 0xFFF
    return ms / 1000 + fraction / 4096 / 1000


@dataclass
class Peaks:
    web: int = 0
    workers: int = 0
    total: int = 0


class BackendSampler:
    """Peaks of backends by tier, and committed transactions."""

    def __init__(self, admin_dsn: str, database: str) -> None:
        self.database = database
        self.connection = psycopg2.connect(admin_dsn, application_name="webapp-bench-sampler")
        self.connection.autocommit = True
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def commits(self) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.database,))
            return int(cursor.fetchone()[0])

    def start(self) -> BackendSampler:
        self.peaks = Peaks()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="backend-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Peaks:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peaks

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name <> 'webapp-bench-watcher' GROUP BY 1",
                (self.database,),
            )
            rows = cursor.fetchall()
        web = sum(n for name, n in rows if name.startswith("webapp-web"))
        workers = sum(n for name, n in rows if name.startswith("webapp-worker"))
        total = sum(n for _, n in rows)
        self.peaks = Peaks(max(self.peaks.web, web), max(self.peaks.workers, workers),
                           max(self.peaks.total, total))

    def wait_until_gone(self, timeout: float = 30.0) -> None:
        """Wait for the stopped services' backends to exit: a backend reports
        its transactions to the statistics when it ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                               "AND application_name LIKE 'webapp-%%' "
                               "AND application_name NOT LIKE 'webapp-bench-%%'", (self.database,))
                if cursor.fetchone()[0] == 0:
                    return
            time.sleep(0.1)

    def close(self) -> None:
        self.connection.close()


def run_traces(run: str, requests: int) -> list[str]:
    """The traces of a load run's requests (``bench/app.py``: ``<run>-<n>``)."""
    return [f"{run}-{n}" for n in range(requests)]


@dataclass
class VisibilityWatcher:
    """When do the watched records become visible?"""

    dsn: str
    delays: list[float] = field(default_factory=list)
    queries: int = 0

    def __post_init__(self) -> None:
        self.connection = psycopg2.connect(self.dsn, application_name="webapp-bench-watcher")
        self.connection.autocommit = True
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-watcher", daemon=True)

    def start(self) -> VisibilityWatcher:
        self._thread.start()
        return self

    def watch(self, record_id: str) -> None:
        with self._lock:
            self._pending[record_id] = uuid7_time(record_id)

    def _run(self) -> None:
        while not self._stop.is_set() or self._pending:
            self.poll()
            if self._stop.wait(POLL_SECONDS) and not self._pending:
                break

    def poll(self) -> None:
        with self._lock:
            ids = list(self._pending)
        if not ids:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT id::text FROM execution_logs WHERE id = ANY(%s::uuid[])", (ids,))
            seen = [row[0] for row in cursor.fetchall()]
        self.queries += 1
        now = time.time()
        with self._lock:
            for record_id in seen:
                created = self._pending.pop(record_id, None)
                if created is not None:
                    self.delays.append(now - created)

    def count(self, traces: list[str]) -> int:
        """Records of these traces stored so far. Looked up in the trace
        index: a ``LIKE`` on the run's prefix cannot use it (the collation
        is not C), and a scan of the whole table at every poll took the
        cores that what it waited for was measured on."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM execution_logs WHERE trace_id = ANY(%s)", (traces,))
            self.queries += 1
            return int(cursor.fetchone()[0])

    def visible(self, record_ids: list[str]) -> int:
        """How many of these records are stored (primary key lookups)."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM execution_logs WHERE id = ANY(%s::uuid[])", (record_ids,))
            self.queries += 1
            return int(cursor.fetchone()[0])

    def finish(self, timeout: float) -> None:
        """Stop once every watched record was seen, or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        self._stop.set()
        with self._lock:
            self._pending.clear()
        self._thread.join()

    def close(self) -> None:
        self.connection.close()
