"""What a process of the app does as it starts serving and as it stops.

One place for it, which the servers' hooks only call: gunicorn's
(``docker/gunicorn.conf.py``) and Celery's signals (:mod:`webapp.celery_app`).

* :func:`loaded`: the app is built, in the process that forks the others
  (gunicorn's master with ``--preload``, Celery's main process). What it
  made leaves the garbage collector's scans (``gc.freeze``): full
  collections over the app's 120,000 objects paused every thread of a
  process for about 120 ms, measured, and forked children would copy the
  pages the collector touches.
* :func:`child_started`: a forked process (a gunicorn worker, a Celery
  prefork child) drops the database connections it inherited (two
  processes on one socket corrupt it), starts its log flusher at once (it
  adopts and replays spool segments that dead processes left, even before
  this one logs), and freezes what it has made so far.
* :func:`serving_in_place`: a process that was not forked serves (a Celery
  worker with a pool of threads): its flusher starts at once, to replay
  what dead processes left.
* :func:`stopping`: flush the execution logs of every logger of the process
  (the flusher thread would otherwise die with buffered records); what
  cannot be published within the timeout stays in the spool.
"""

from __future__ import annotations

import gc

from flask import Flask

from .execlog import close_all, start_all
from .execlog.extension import STORE_ENGINE_KEY


def loaded() -> None:
    gc.freeze()


def child_started(app: Flask | None) -> None:
    if app is not None:
        dispose_inherited_engines(app)
    start_all()
    gc.freeze()


def serving_in_place() -> None:
    start_all()


def stopping(timeout: float | None = None) -> None:
    close_all(timeout)


def dispose_inherited_engines(app: Flask) -> None:
    """Forget (without closing: they are the parent's) the pooled
    connections of the app's engines and of the logger's store engine."""
    from .extensions import db

    with app.app_context():
        for engine in [*db.engines.values(), app.extensions.get(STORE_ENGINE_KEY)]:
            if engine is not None:
                engine.dispose(close=False)
