"""The Celery app of a Flask app: every task runs inside the app context.

This is Flask's documented pattern (``docs/patterns/celery.rst``): a
``FlaskTask`` whose ``__call__`` pushes ``app.app_context()``, settings from
the one ``app.config["CELERY"]`` dict, ``set_default()``, and the instance in
``app.extensions["celery"]``. Tasks are declared with ``@shared_task``.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery import signals
from flask import Flask

from . import lifecycle, worker_metrics
from .execlog.rabbitmq import check_worker_queues
from .execlog.serializer import register as register_batch_serializer


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    register_batch_serializer()  # before any message is made or read
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
    """The process hooks of a Celery worker of this app: :mod:`.lifecycle`
    does the work (the main process is :func:`~.lifecycle.loaded` before it
    forks its pool; each prefork child, and a solo pool's process, is
    :func:`~.lifecycle.child_started`; a pool of threads (or greenlets),
    whose tasks run in the main process but which fires no process signal,
    is :func:`~.lifecycle.serving_in_place` once the worker is ready; every
    process is :func:`~.lifecycle.stopping` as it stops); the worker
    checks its queues at start (RabbitMQ) and serves its children's metrics
    (:mod:`.worker_metrics`)."""
    app_ref = weakref.ref(app)

    def main_process_loaded(sender: Any = None, **_: Any) -> None:
        check_worker_queues(sender.app)
        lifecycle.loaded()
        worker_metrics.serve()

    def child_started(**_: Any) -> None:
        lifecycle.child_started(app_ref())

    def ready(sender: Any = None, **_: Any) -> None:
        # Imported here: only a worker loads its pools (the web tier never does).
        from celery.concurrency.prefork import TaskPool as PreforkPool
        from celery.concurrency.solo import TaskPool as SoloPool

        if not isinstance(sender.pool, (PreforkPool, SoloPool)):
            lifecycle.serving_in_place()

    def child_stopping(**_: Any) -> None:
        lifecycle.stopping()
        worker_metrics.forget_this_process()

    def main_process_stopping(**_: Any) -> None:
        lifecycle.stopping()

    signals.worker_init.connect(main_process_loaded, weak=False)
    signals.worker_process_init.connect(child_started, weak=False)
    signals.worker_ready.connect(ready, weak=False)
    signals.worker_process_shutdown.connect(child_stopping, weak=False)
    signals.worker_shutdown.connect(main_process_stopping, weak=False)
