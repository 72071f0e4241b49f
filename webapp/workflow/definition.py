"""Workflow definitions: an ordered list of steps, each a runner with a
retry policy.

Plugins declare them in Python (``Workflow("flaky", [Step("flaky",
retry=RetryPolicy(max_attempts=3))])``); configuration declares them as JSON
(:func:`workflow_from_config`). Both are checked here, so a bad definition
fails with a message naming what is wrong.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import STEP_ERROR_KINDS, TRANSIENT

#: Names of workflows, runners and steps: they appear in URLs, commands and
#: ``executions.workflow`` (100 characters).
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
#: The longest backoff a policy may ask for: retries wait inside the worker
#: process that runs the execution (see RetryService), holding its slot.
MAX_BACKOFF_SECONDS = 600.0


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a valid name, else ``ValueError`` naming ``what``."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} must be 1 to 100 characters of a-z, 0-9, '_', '.', '-' "
            f"starting with a letter or digit; got {value!r}"
        )
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step is tried, and how long to wait between tries.

    The n-th retry waits ``backoff_base * 2**(n-1)`` seconds, at most
    ``backoff_cap``, with jitter (50 to 100 % of that) so that executions
    failing together do not retry together. Only failures whose kind is in
    ``retry_on`` are retried (by default transient ones).
    """

    max_attempts: int = 3
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    retry_on: frozenset[str] = frozenset({TRANSIENT})

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for key in ("backoff_base", "backoff_cap"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number of seconds, got {value!r}")
            if not 0 <= value <= MAX_BACKOFF_SECONDS:
                raise ValueError(f"{key} must be between 0 and {MAX_BACKOFF_SECONDS:g} s, got {value}")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        if isinstance(self.retry_on, str) or not isinstance(self.retry_on, Iterable):
            raise ValueError(f"retry_on must be a list of error kinds, got {self.retry_on!r}")
        kinds = frozenset(self.retry_on)
        unknown = sorted(kinds - set(STEP_ERROR_KINDS))
        if unknown:
            raise ValueError(
                f"retry_on: unknown error kind(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(STEP_ERROR_KINDS)}"
            )
        object.__setattr__(self, "retry_on", kinds)

    def should_retry(self, kind: str, attempt: int) -> bool:
        """Whether the ``attempt``-th try (1-based, in this run), which
        failed with ``kind``, is followed by another."""
        return kind in self.retry_on and attempt < self.max_attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failed try."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(attempt - 1, 30))
        return delay * random.uniform(0.5, 1.0)

    @classmethod
    def from_config(cls, data: Any) -> RetryPolicy:
        if not isinstance(data, Mapping):
            raise ValueError(f"retry must be an object, got {data!r}")
        known = {"max_attempts", "backoff_base", "backoff_cap", "retry_on"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"retry: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def describe(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff_base": self.backoff_base,
            "backoff_cap": self.backoff_cap,
            "retry_on": sorted(self.retry_on),
        }


@dataclass(frozen=True)
class Step:
    """One step of a workflow: the runner it calls, under a name unique in
    the workflow (the runner's name unless given), with its retry policy."""

    runner: str
    name: str = ""
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        check_name(self.runner, "a step's runner")
        object.__setattr__(self, "name", check_name(self.name or self.runner, "a step's name"))
        if not isinstance(self.retry, RetryPolicy):
            raise ValueError(f"step {self.name!r}: retry must be a RetryPolicy, got {self.retry!r}")


@dataclass(frozen=True)
class Workflow:
    """A named, ordered list of steps. A step may be given as a runner name."""

    name: str
    steps: tuple[Step, ...]
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "a workflow's name")
        if isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, Iterable):
            raise ValueError(f"workflow {self.name!r}: steps must be a list, got {self.steps!r}")
        steps = tuple(Step(item) if isinstance(item, str) else item for item in self.steps)
        if not steps:
            raise ValueError(f"workflow {self.name!r} has no steps")
        for step in steps:
            if not isinstance(step, Step):
                raise ValueError(
                    f"workflow {self.name!r}: a step must be a Step or a runner name, got {step!r}"
                )
        names = [step.name for step in steps]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"workflow {self.name!r}: step name(s) {', '.join(repeated)} used twice; "
                "give each use of a runner its own name"
            )
        object.__setattr__(self, "steps", steps)

    @property
    def runners(self) -> list[str]:
        return [step.runner for step in self.steps]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "steps": [
                {"name": step.name, "runner": step.runner, "retry": step.retry.describe()}
                for step in self.steps
            ],
        }


def workflow_from_config(name: str, spec: Any) -> Workflow:
    """A workflow from its configuration: a list of steps, or an object
    ``{"steps": [...], "description": "..."}``. A step is a runner name or an
    object ``{"runner": ..., "name": ..., "retry": {...}}``. Raises
    ``ValueError`` naming what is wrong."""
    description = ""
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"steps", "description"})
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: description, steps")
        description = str(spec.get("description", ""))
        spec = spec.get("steps")
    if isinstance(spec, (str, bytes)) or not isinstance(spec, list):
        raise ValueError(f"steps must be a list, got {spec!r}")
    return Workflow(name, tuple(_step_from_config(item) for item in spec), description)


def _step_from_config(item: Any) -> Step | str:
    if isinstance(item, str):
        return item
    if not isinstance(item, Mapping):
        raise ValueError(f"a step must be a runner name or an object, got {item!r}")
    unknown = sorted(set(item) - {"runner", "name", "retry"})
    if unknown:
        raise ValueError(f"step: unknown key(s) {', '.join(unknown)}; known: name, retry, runner")
    if "runner" not in item:
        raise ValueError(f"step {item!r} has no runner")
    retry = RetryPolicy.from_config(item["retry"]) if "retry" in item else RetryPolicy()
    return Step(item["runner"], item.get("name", ""), retry)
