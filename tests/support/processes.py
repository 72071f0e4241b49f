"""Real processes for tests: a Celery worker, gunicorn, a private Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from .waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """A subprocess with its output in a file, stopped for sure at the end."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, *,
                 cwd: Path = ROOT) -> None:
        self.name = name
        self.cwd = cwd
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What the process wrote since its last start."""
        with open(self.log_path, "rb") as stream:
            stream.seek(self._log_offset)
            return stream.read().decode("utf-8", "replace")

    def wait_for_output(self, text: str, timeout: float = 60.0) -> None:
        def seen() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited early:\n{self.output()[-4000:]}")
            return text in self.output()

        wait_for(seen, timeout=timeout, interval=0.1, message=f"{self.name} to print {text!r}")

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL the process and every child of it (its session)."""
        if self.process is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def freeze_group(self) -> None:
        """SIGSTOP the process and every child of it: it holds what it had."""
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw_group(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, then SIGKILL whatever is left; the exit code."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        code = self.process.poll()
        self.kill_group()
        return code


def celery_worker(
    env: dict[str, str], log_path: Path, *, name: str, queues: str = "logs,workflows",
    concurrency: int = 2, extra: list[str] | None = None, app: str = "celery_worker",
) -> ManagedProcess:
    argv = [
        str(BIN / "celery"), "-A", app, "worker",
        "--hostname", f"{name}@%h", "--queues", queues,
        "--concurrency", str(concurrency), "--pool", "prefork",
        "--without-gossip", "--without-mingle", "--loglevel", "info",
        *(extra or []),
    ]
    return ManagedProcess(name, argv, env, log_path)


def start_celery_worker(env: dict[str, str], log_path: Path, *, name: str, **kwargs) -> ManagedProcess:
    worker = celery_worker(env, log_path, name=name, **kwargs).start()
    worker.wait_for_output(" ready.", timeout=60)
    return worker


def redis_server(port: int, workdir: Path, tls: bool = False) -> ManagedProcess:
    """A private Redis for tests that stop the broker; with ``tls``, it
    speaks only TLS on ``port`` (``rediss://``), with a self-signed
    certificate made in ``workdir``."""
    argv = [
        "redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir),
    ]
    if tls:
        key, certificate = workdir / "redis-key.pem", workdir / "redis-cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
                       check=True, capture_output=True, timeout=60)
        argv += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certificate),
                 "--tls-key-file", str(key), "--tls-ca-cert-file", str(certificate),
                 "--tls-auth-clients", "no"]
    else:
        argv += ["--port", str(port)]
    return ManagedProcess(f"redis:{port}", argv, dict(os.environ), workdir / f"redis-{port}.log")


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    def open_() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(open_, timeout=timeout, message=f"port {port} to accept connections")


def children(pid: int) -> list[int]:
    """The pids of the direct children of ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found
