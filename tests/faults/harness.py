"""The fault-injection harness: private services we may stop, a steady load,
and the sent-versus-stored comparison every scenario ends with."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..support.processes import ManagedProcess, free_port, wait_for_port
from ..support.waiting import wait_for

PG_BIN = Path(os.environ.get("TEST_PG_BIN") or sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])


class PrivateRedis:
    """A Redis of the test's own, persisting every write (appendfsync always),
    as a broker must for "stopped and started again" to lose nothing."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: ManagedProcess | None = None

    def start(self) -> PrivateRedis:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)]
        self.process = ManagedProcess(f"redis:{self.port}", argv, dict(os.environ),
                                      self.workdir / "redis.log").start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        """Graceful: Redis finishes its append-only file and exits."""
        if self.process is not None:
            self.process.stop(timeout=30)
            self.process = None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, which the test may restart.

    Its directory is a fresh one under the system temp dir (pytest's are
    private to root, and PostgreSQL runs as the postgres user when we are
    root); :meth:`remove` deletes it.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="webapp-faults-pg-"))
        self.data = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/faults"

    def _run(self, *argv: str) -> None:
        command = [str(PG_BIN / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> PrivatePostgres:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "faults")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c fsync=off -c synchronous_commit=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.workdir / "pg.log"),
                  "-w", "start")

    def restart(self) -> None:
        """A real restart: every connection is cut, the server is away a moment."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        """Fast shutdown: connections are cut, the server is gone."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class SteadyLoad:
    """Logs ``total`` records from a thread, ``burst`` at a time every
    ``pause`` seconds, and remembers the id of every record log() returned."""

    log: Callable[..., Any]
    trace_id: str
    total: int = 6000
    burst: int = 50
    pause: float = 0.05
    sent: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self.thread = threading.Thread(target=self._run, name="steady-load", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        for start in range(0, self.total, self.burst):
            for i in range(start, min(start + self.burst, self.total)):
                self.sent.append(self.log(self.trace_id, "workflow", f"load {i}", details={"i": i}).id)
            time.sleep(self.pause)  # the load's own pace, not a wait for a condition

    def wait_until_sent(self, count: int, timeout: float = 60.0) -> None:
        wait_for(lambda: len(self.sent) >= count, timeout=timeout, message=f"{count} records sent")

    def join(self, timeout: float = 120.0) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the load did not finish"


def stored_counts(engine: sa.engine.Engine, trace_id: str) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, count(*) FROM execution_logs WHERE trace_id = :t GROUP BY id"),
            {"t": trace_id},
        )
        return {str(row[0]): row[1] for row in rows}


def assert_nothing_lost(engine: sa.engine.Engine, trace_id: str, sent: list[str],
                        timeout: float = 120.0, label: str = "") -> None:
    """Wait for every sent id to be stored, then compare; print the figures."""
    expected = set(sent)

    def arrived() -> bool:
        return expected <= set(stored_counts(engine, trace_id))

    try:
        wait_for(arrived, timeout=timeout, interval=0.25, message="every sent record to be stored")
    finally:
        counts = stored_counts(engine, trace_id)
        missing = expected - set(counts)
        duplicated = sum(n - 1 for n in counts.values() if n > 1)
        print(f"\n{label or trace_id}: sent={len(sent)} stored={sum(counts.values())} "
              f"missing={len(missing)} duplicated={duplicated}")
    assert len(sent) == len(expected), "log() returned the same id twice"
    assert not missing
    assert duplicated == 0
    assert set(counts) == expected


def new_trace(name: str) -> str:
    return f"fault-{name}-{uuid.uuid4()}"
