"""The Celery app of a Flask app: every task runs inside the app context.

This is Flask's documented pattern (``docs/patterns/celery.rst``): a
``FlaskTask`` whose ``__call__`` pushes ``app.app_context()``, settings from
the one ``app.config["CELERY"]`` dict, ``set_default()``, and the instance in
``app.extensions["celery"]``. Tasks are declared with ``@shared_task``.
"""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery import signals
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    _make_transport_folders(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    _connect_worker_signals(app)
    return celery


def _make_transport_folders(config: dict[str, Any]) -> None:
    """kombu's file-system transport (the embedded default) needs its
    folders to exist."""
    transport = config.get("broker_transport_options") or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if key in transport:
            Path(transport[key]).mkdir(parents=True, exist_ok=True)


def _connect_worker_signals(app: Flask) -> None:
    """Process hooks of a Celery worker for this app.

    A prefork child must not reuse pooled database connections inherited
    from the parent, and starts its log flusher (which also adopts spool
    segments of dead processes); every process flushes its execution logs
    when it stops (the flusher thread would otherwise die with buffered
    records). The objects made while loading are frozen out of the garbage
    collector's scans, in the main process before it forks its pool and in
    each child (full collections over them paused a process for about
    120 ms; see docker/gunicorn.conf.py).
    """
    app_ref = weakref.ref(app)

    def freeze_loaded_objects(**_: Any) -> None:
        gc.freeze()

    def prepare_child_process(**_: Any) -> None:
        flask_app = app_ref()
        if flask_app is None:
            return
        from .extensions import db

        from .execlog.extension import STORE_ENGINE_KEY

        with flask_app.app_context():
            engines = [*db.engines.values(), flask_app.extensions.get(STORE_ENGINE_KEY)]
            for engine in engines:
                if engine is not None:
                    engine.dispose(close=False)
        from .execlog import start_all

        start_all()
        gc.freeze()

    def flush_execution_logs(**_: Any) -> None:
        from .execlog import close_all

        close_all()

    def check_queues(sender: Any = None, **_: Any) -> None:
        from .execlog.rabbitmq import check_worker_queues

        check_worker_queues(sender.app)

    signals.worker_init.connect(check_queues, weak=False)
    signals.worker_init.connect(freeze_loaded_objects, weak=False)
    signals.worker_init.connect(serve_worker_metrics, weak=False)
    signals.worker_process_shutdown.connect(forget_child_gauges, weak=False)
    signals.worker_process_init.connect(prepare_child_process, weak=False)
    signals.worker_process_shutdown.connect(flush_execution_logs, weak=False)
    signals.worker_shutdown.connect(flush_execution_logs, weak=False)


# -- the worker's Prometheus metrics ------------------------------------------
#
# The batches are stored by the prefork children, so their metrics are in
# those processes. With CELERY_METRICS_BIND=host:port, each child writes them
# to a directory of this worker (prometheus_client's multiprocess mode) and
# the worker's main process serves them all on host:port.

METRICS_BIND = "CELERY_METRICS_BIND"


def prepare_worker_metrics(environ: MutableMapping[str, str]) -> None:
    """Point prometheus_client at this worker's directory: call it before
    the app is built (``celery_worker.py``), which imports prometheus_client."""
    bind = environ.get("CELERY_METRICS_BIND")
    if not bind:
        return
    from .config import config_from_env

    _host, port = _split_bind(bind)
    var_dir = Path(config_from_env(environ)["VAR_DIR"])
    environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var_dir / "prometheus" / f"worker-{port}"))
    Path(environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    # prometheus_client picks its mode when it is imported, and the celery
    # command imports it before this module (Flower's command plugin does):
    # pick again, before the app's metrics are made.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def serve_worker_metrics(**_: Any) -> None:
    """``worker_init`` (the main process, before the children start)."""
    bind = os.environ.get("CELERY_METRICS_BIND")
    if not bind:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    from .metrics import clear_multiprocess_dir, multiprocess_dir

    path = multiprocess_dir()
    if path is None:
        raise RuntimeError(f"{METRICS_BIND} needs PROMETHEUS_MULTIPROC_DIR: start the worker with "
                           "celery -A celery_worker")
    clear_multiprocess_dir(path, keep_pid=os.getpid())
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    host, port = _split_bind(bind)
    start_http_server(port, addr=host, registry=registry)


def forget_child_gauges(**_: Any) -> None:
    """A child stops: its live gauges (records buffered) no longer count."""
    if os.environ.get("CELERY_METRICS_BIND"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def _split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{METRICS_BIND} must be host:port, got {bind!r}")
    return host, int(port)
