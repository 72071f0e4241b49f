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
from .notify import NotificationService
from .registry import discover, parse_deny_list
from .settings import EXTENSION_KEY as SETTINGS_KEY
from .settings import WorkflowSettings


def init_app(app: Flask) -> None:
    if REGISTRY_KEY in app.extensions:
        raise RuntimeError("the workflow engine is already set up on this app")
    settings = WorkflowSettings.from_config(app.config)
    app.config.update(settings.as_config())
    app.extensions[SETTINGS_KEY] = settings
    app.extensions[REGISTRY_KEY] = discover(
        disabled=parse_deny_list(settings.disabled_plugins),
        config_workflows=settings.workflows,
    )
    app.extensions[NOTIFIER_KEY] = NotificationService.from_broker_url(app.config["CELERY"]["broker_url"])
    from . import tasks  # noqa: F401 - registers the workflow tasks
