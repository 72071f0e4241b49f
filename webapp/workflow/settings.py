"""The workflow engine's settings, read once when the app starts
(:mod:`webapp.settings`; see :mod:`.extension` for what each means)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import current_app

from ..settings import Settings

EXTENSION_KEY = "workflow_settings"


@dataclass(frozen=True)
class WorkflowSettings(Settings):
    PREFIX: ClassVar[str] = "WORKFLOW_"

    #: Workflows declared in configuration: name -> steps (JSON in the environment).
    workflows: dict[str, Any] = field(default_factory=dict, metadata={"key": "WORKFLOWS"})
    #: Runners, workflows or distributions not to load, comma-separated.
    disabled_plugins: str = field(default="", metadata={"key": "WEBAPP_DISABLED_PLUGINS"})
    heartbeat_seconds: float = 10.0
    stale_seconds: float = 60.0
    queued_stale_seconds: float = 3600.0

    def check(self) -> None:
        if self.heartbeat_seconds <= 0 or self.stale_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                f"WORKFLOW_STALE_SECONDS ({self.stale_seconds:g}) must be at least twice "
                f"WORKFLOW_HEARTBEAT_SECONDS ({self.heartbeat_seconds:g}), which must be positive: a live "
                "worker would be taken for a dead one"
            )
        if self.queued_stale_seconds <= 0:
            raise ValueError("WORKFLOW_QUEUED_STALE_SECONDS must be positive, "
                             f"got {self.queued_stale_seconds:g}")


def current_settings() -> WorkflowSettings:
    """The current app's workflow settings."""
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
