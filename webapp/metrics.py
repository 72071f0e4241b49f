"""Prometheus metrics of the app's processes: the HTTP API's requests
(counted by :mod:`webapp.api.metrics`), and the multiprocess set-up every
process shares. The execution log's own metrics are in
:mod:`webapp.execlog.metrics`.

Processes: with ``PROMETHEUS_MULTIPROC_DIR`` set before this module is
imported, prometheus_client writes every process's values to files in that
directory, and a scrape reads them all (its multiprocess mode). The gunicorn
config sets it for the web tier; a Celery worker started with
``CELERY_METRICS_BIND`` serves its children's metrics on that address
(:mod:`webapp.worker_metrics`). Without it, values stay in the process.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered", ["method", "endpoint", "status"])
HTTP_SECONDS = Histogram("http_request_duration_seconds", "Time to answer (a stream: to its first byte)",
                         ["method", "endpoint"])


def observe_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, endpoint, str(status)).inc()
    HTTP_SECONDS.labels(method, endpoint).observe(seconds)


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def clear_multiprocess_dir(path: Path, keep_pid: int) -> None:
    """Remove the files of other processes (of an earlier run): called when a
    server starts, before it forks the processes that write there."""
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        if not file.stem.endswith(f"_{keep_pid}"):
            file.unlink(missing_ok=True)
