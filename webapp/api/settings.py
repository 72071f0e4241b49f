"""The HTTP API's settings (``API_*``; see :mod:`webapp.api` for what each
means), read once when the app starts (:mod:`webapp.settings`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from flask import current_app

from ..settings import Settings

EXTENSION_KEY = "api_settings"
MODES = ("token", "open")


@dataclass(frozen=True)
class ApiSettings(Settings):
    PREFIX: ClassVar[str] = "API_"
    #: flask-smorest's own keys (webapp.api.SPEC_SETTINGS).
    FOREIGN_KEYS: ClassVar[frozenset[str]] = frozenset(("API_TITLE", "API_VERSION", "API_SPEC_OPTIONS"))
    ENUMERATED: ClassVar[frozenset[str]] = frozenset(("API_AUTH",))

    #: ``token`` or ``open``; empty: ``token`` when there are tokens, else ``open``.
    auth: str = ""
    tokens: tuple[str, ...] = ()
    protect_probes: bool = False
    max_body_bytes: int = 1024 * 1024
    max_limit: int = 1000
    sse_poll_interval: float = 1.0
    sse_heartbeat: float = 15.0
    sse_log_delay: float = 5.0
    sse_max_seconds: float = 300.0
    sse_max_streams: int = 4
    sse_max_streams_per_token: int = 2
    ready_cache_seconds: float = 5.0

    @classmethod
    def derive(cls, values: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
        if not values["auth"]:
            values["auth"] = "token" if values["tokens"] else "open"
        if config.get("MAX_CONTENT_LENGTH") is not None:  # Flask's own key, set in code, wins
            values["max_body_bytes"] = int(config["MAX_CONTENT_LENGTH"])
        return values

    def check(self) -> None:
        if self.auth not in MODES:
            raise ValueError(f"API_AUTH must be one of {', '.join(sorted(MODES))}; got {self.auth!r}")
        for key in ("max_body_bytes", "max_limit", "sse_poll_interval", "sse_heartbeat", "sse_max_seconds",
                    "sse_max_streams", "sse_max_streams_per_token"):
            if not getattr(self, key) > 0:
                raise ValueError(f"API_{key.upper()} must be positive, got {getattr(self, key)!r}")
        for key in ("sse_log_delay", "ready_cache_seconds"):
            if getattr(self, key) < 0:
                raise ValueError(f"API_{key.upper()} must be 0 or more, got {getattr(self, key)!r}")


def current_settings() -> ApiSettings:
    """The current app's API settings."""
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
