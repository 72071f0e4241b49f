"""A Celery worker's Prometheus metrics, served by its main process.

The batches are stored by the worker's prefork children, so their metrics
are in those processes. With ``CELERY_METRICS_BIND=host:port``, each child
writes them to a directory of this worker (prometheus_client's multiprocess
mode: ``PROMETHEUS_MULTIPROC_DIR``) and the main process serves them all on
``host:port``.

prometheus_client picks its mode once, when it is first imported, from the
environment; the ``celery`` command imports it before the app is loaded
(Flower's command plugin does). So ``PROMETHEUS_MULTIPROC_DIR`` must be in
the environment the worker starts with: ``scripts/start_celery_worker.sh``
sets it to ``$WEBAPP_VAR_DIR/prometheus/worker-<port>``; started otherwise,
the worker refuses ``CELERY_METRICS_BIND`` without it, with that message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .metrics import MULTIPROC_ENV, clear_multiprocess_dir, multiprocess_dir

BIND_ENV = "CELERY_METRICS_BIND"


class MetricsUnset(RuntimeError):
    """``CELERY_METRICS_BIND`` without ``PROMETHEUS_MULTIPROC_DIR``."""


def check_environment(environ: Mapping[str, str]) -> None:
    """Before the app is built (``celery_worker.py``): a worker that serves
    metrics has its multiprocess directory; :class:`MetricsUnset` if not."""
    bind = environ.get(BIND_ENV)
    if not bind:
        return
    split_bind(bind)
    directory = environ.get(MULTIPROC_ENV)
    if not directory:
        state = "already imported" if "prometheus_client" in sys.modules else "about to be imported"
        raise MetricsUnset(f"{BIND_ENV} needs {MULTIPROC_ENV} in the worker's environment "
                           f"(prometheus_client, {state}, reads it once): start the worker with "
                           f"scripts/start_celery_worker.sh, or set {MULTIPROC_ENV} to a directory of "
                           "this worker's own")
    Path(directory).mkdir(parents=True, exist_ok=True)


def serve() -> None:
    """The main process, before its children start (``worker_init``)."""
    bind = os.environ.get(BIND_ENV)
    if not bind:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    path = multiprocess_dir()
    if path is None:
        raise MetricsUnset(f"{BIND_ENV} needs {MULTIPROC_ENV}")
    clear_multiprocess_dir(path, keep_pid=os.getpid())
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    host, port = split_bind(bind)
    start_http_server(port, addr=host, registry=registry)


def forget_this_process() -> None:
    """A child stops: its live gauges (records buffered) no longer count."""
    if os.environ.get(BIND_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{BIND_ENV} must be host:port, got {bind!r}")
    return host, int(port)
