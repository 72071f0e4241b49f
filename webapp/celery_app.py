"""The Celery app of a Flask app: every task runs inside the app context.

This is Flask's documented pattern (``docs/patterns/celery.rst``): a
``FlaskTask`` whose ``__call__`` pushes ``app.app_context()``, settings from
the one ``app.config["CELERY"]`` dict, ``set_default()``, and the instance in
``app.extensions["celery"]``. Tasks are declared with ``@shared_task``.
"""

from __future__ import annotations

import weakref
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
    celery.set_default()
    app.extensions["celery"] = celery
    _connect_worker_signals(app)
    return celery


def _connect_worker_signals(app: Flask) -> None:
    """Process hooks of a Celery worker for this app.

    A prefork child must not reuse pooled database connections inherited
    from the parent, and starts its log flusher (which also adopts spool
    segments of dead processes); every process flushes its execution logs
    when it stops (the flusher thread would otherwise die with buffered
    records).
    """
    app_ref = weakref.ref(app)

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

    def flush_execution_logs(**_: Any) -> None:
        from .execlog import close_all

        close_all()

    signals.worker_process_init.connect(prepare_child_process, weak=False)
    signals.worker_process_shutdown.connect(flush_execution_logs, weak=False)
    signals.worker_shutdown.connect(flush_execution_logs, weak=False)
