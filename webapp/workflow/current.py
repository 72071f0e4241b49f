"""The workflow engine's objects of the current app.

A leaf of the package: the engine's modules reach the app's registry and
notifier through here, and only :mod:`.extension` (which imports the tasks,
which import the engine) puts them there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from .notify import NotificationService
    from .registry import Registry

REGISTRY_KEY = "workflow_registry"
NOTIFIER_KEY = "workflow_notifier"


def current_registry() -> Registry:
    """The current app's registry."""
    return _extension(REGISTRY_KEY)  # type: ignore[no-any-return]


def current_notifier() -> NotificationService:
    """The current app's notifier."""
    return _extension(NOTIFIER_KEY)  # type: ignore[no-any-return]


def _extension(key: str) -> object:
    try:
        return current_app.extensions[key]
    except KeyError:
        raise RuntimeError(
            "the workflow engine is not set up on this app: build it with webapp.create_app()"
        ) from None
