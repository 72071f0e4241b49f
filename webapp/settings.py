"""Settings: one way for every part of the app to read its configuration.

A part's settings are a frozen dataclass that subclasses :class:`Settings`:
each field is one configuration key (``PREFIX`` + the field's name in upper
case, unless the field names its ``key`` in its metadata), typed by its
annotation, with its default. ``from_config(app.config)`` reads them once, at
start: a value comes as the environment gives it (text, which is parsed) or
typed (an override in code), a bad one raises ``ValueError`` naming the key,
and an unknown key of the part's prefix given in code is refused (a typo
would otherwise be silently ignored). An unknown one from the environment
(listed in ``SETTINGS_FROM_ENVIRONMENT`` by :mod:`webapp.config`) is not
ours to refuse: ``API_PUBLISH`` is Compose's, and a host may set any
``API_*`` for something else; it is logged as a warning (ignored: a typo?).
``check()`` holds the rules between values.

:mod:`webapp.config` only maps the environment to these keys. A leaf module:
every layer may use it.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, ClassVar, TypeVar

S = TypeVar("S", bound="Settings")

log = logging.getLogger(__name__)

#: The configuration key that lists the keys taken from the environment.
ENVIRONMENT_KEYS = "SETTINGS_FROM_ENVIRONMENT"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class Settings:
    """The base of a part's frozen settings dataclass (see the module)."""

    #: The prefix of the part's keys (``EXECLOG_``, ``API_``, ...).
    PREFIX: ClassVar[str] = ""
    #: Keys that carry the prefix but belong to someone else (a library's).
    FOREIGN_KEYS: ClassVar[frozenset[str]] = frozenset()
    #: Keys whose text is lowered and stripped (enumerated values).
    ENUMERATED: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def key_of(cls, field: Field[Any]) -> str:
        return field.metadata.get("key") or f"{cls.PREFIX}{field.name.upper()}"

    @classmethod
    def config_defaults(cls) -> dict[str, Any]:
        """Each key with its default."""
        return {cls.key_of(f): _default(f) for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def from_config(cls: type[S], config: Mapping[str, Any]) -> S:
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        known = set()
        for field in fields(cls):  # type: ignore[arg-type]
            key = cls.key_of(field)
            known.add(key)
            if key in config and config[key] is not None:
                values[field.name] = parse(key, config[key], hints[field.name], key in cls.ENUMERATED)
            else:
                values[field.name] = _default(field)
        if cls.PREFIX:
            from_environment = frozenset(config.get(ENVIRONMENT_KEYS) or ())
            unknown = sorted(k for k in config if k.startswith(cls.PREFIX) and k not in known
                             and k not in cls.FOREIGN_KEYS)
            in_code = [k for k in unknown if k not in from_environment]
            if in_code:
                raise ValueError(f"unknown setting(s) {', '.join(in_code)}")
            if unknown:
                log.warning("ignoring %s from the environment: not a setting of this app (a typo?)",
                            ", ".join(unknown))
        settings = cls(**cls.derive(values, config))
        settings.check()
        return settings

    def as_config(self) -> dict[str, Any]:
        """Each key with the value in force (what ``init_app`` writes back
        into ``app.config``, so that it shows what the part uses)."""
        return {type(self).key_of(f): getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def derive(cls, values: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
        """Values that follow from others (a default that depends on
        another key, of this part or the app's)."""
        return values

    def check(self) -> None:
        """Rules between values; ``ValueError`` naming the key."""


def _default(field: Field[Any]) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    raise TypeError(f"setting {field.name} has no default")


def parse(key: str, value: Any, kind: Any, enumerated: bool = False) -> Any:
    """``value`` (text from the environment, or typed) as ``kind``."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            return _flag(key, value)
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind is float and not isinstance(value, bool):
            return float(value)
        if kind is str:
            text = str(value).strip()
            return text.lower() if enumerated else text
        if origin is tuple:  # a comma-separated list of text
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if kind is dict or origin is dict:  # a JSON object
            return _json_object(key, value)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and key in str(exc):
            raise
        raise ValueError(f"{key} must be {getattr(kind, '__name__', kind)}, got {value!r}") from None
    raise TypeError(f"{key}: no parser for {kind!r}")


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{key} must be 1 or 0, got {value!r}")


def _json_object(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if str(value).strip() == "":
        return {}
    try:
        found = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{key} must be a JSON object: {exc}") from None
    if not isinstance(found, dict):
        raise ValueError(f"{key} must be a JSON object, got {type(found).__name__}")
    return found
