"""The workflow engine's part of an app: its registry and its notifier.

``init_app(app)`` (called by ``create_app``) discovers the runner and
workflow plugins and stores the :class:`~.registry.Registry` in
``app.extensions["workflow_registry"]`` and the
:class:`~.notify.NotificationService` in
``app.extensions["workflow_notifier"]``. It opens no connection: discovery
imports plugins, nothing more.

Configuration keys:

============================  =========  ====================================
key                           default    meaning
============================  =========  ====================================
``WORKFLOWS``                 ``{}``     workflows declared in configuration:
                                         name -> steps (the environment
                                         variable holds it as JSON)
``WEBAPP_DISABLED_PLUGINS``   ``""``     names of runners, workflows or
                                         distributions not to load,
                                         comma-separated
``WORKFLOW_HEARTBEAT_SECONDS`` ``10``    how often the worker running an
                                         execution stamps ``heartbeat_at``
``WORKFLOW_STALE_SECONDS``    ``60``     a ``running`` execution not stamped
                                         for this long lost its worker and
                                         is failed (``worker_lost``)
``WORKFLOW_QUEUED_STALE_SECONDS`` ``3600`` a ``queued`` execution no worker
                                         took for this long lost its message
                                         and is failed (``lost_in_queue``)
============================  =========  ====================================
"""

from __future__ import annotations

from flask import Flask

from .current import NOTIFIER_KEY, REGISTRY_KEY
from .heartbeat import HEARTBEAT_SECONDS, QUEUED_STALE_SECONDS, STALE_SECONDS
from .notify import NotificationService
from .registry import DENY_LIST_KEY, discover, parse_deny_list


def init_app(app: Flask) -> None:
    if REGISTRY_KEY in app.extensions:
        raise RuntimeError("the workflow engine is already set up on this app")
    app.config.setdefault("WORKFLOWS", {})
    app.config.setdefault(DENY_LIST_KEY, "")
    check_heartbeat(app.config)
    app.extensions[REGISTRY_KEY] = discover(
        disabled=parse_deny_list(app.config[DENY_LIST_KEY]),
        config_workflows=app.config["WORKFLOWS"],
    )
    app.extensions[NOTIFIER_KEY] = NotificationService.from_broker_url(app.config["CELERY"]["broker_url"])
    from . import tasks  # noqa: F401 - registers the workflow.run task


def check_heartbeat(config: dict) -> None:
    """Default the heartbeat settings; ``ValueError`` unless the stale limit
    leaves room for at least two missed stamps."""
    beat = float(config.setdefault("WORKFLOW_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
    stale = float(config.setdefault("WORKFLOW_STALE_SECONDS", STALE_SECONDS))
    if beat <= 0 or stale < 2 * beat:
        raise ValueError(
            f"WORKFLOW_STALE_SECONDS ({stale:g}) must be at least twice WORKFLOW_HEARTBEAT_SECONDS "
            f"({beat:g}), which must be positive: a live worker would be taken for a dead one"
        )
    config["WORKFLOW_HEARTBEAT_SECONDS"], config["WORKFLOW_STALE_SECONDS"] = beat, stale
    queued = float(config.setdefault("WORKFLOW_QUEUED_STALE_SECONDS", QUEUED_STALE_SECONDS))
    if queued <= 0:
        raise ValueError(f"WORKFLOW_QUEUED_STALE_SECONDS must be positive, got {queued:g}")
    config["WORKFLOW_QUEUED_STALE_SECONDS"] = queued
