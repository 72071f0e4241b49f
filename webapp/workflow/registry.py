"""The registry of runners and workflows, discovered through entry points.

Two entry-point groups: ``webapp.runners`` (name -> a Runner subclass of the
same name) and ``webapp.workflows`` (name -> a Workflow of the same name, or a
callable returning one). Workflows may also come from configuration
(``WORKFLOWS``: name -> steps).

Each entry point is loaded on its own, as stevedore does: one that fails to
import, is not what its group expects, or shares its name with another is
recorded as broken with the reason and logged, and the app starts without it.
A name shared by two plugins breaks both (neither is imported): which one
would win would depend on the order of ``sys.path``. Names (or distribution
names) in the deny list, ``WEBAPP_DISABLED_PLUGINS``, are never imported. A
workflow whose steps name a runner that is not available is broken too.

Discovery runs in the app factory (never at import time) and never touches
the database.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from marshmallow import Schema

from .definition import Workflow, check_name, workflow_from_config
from .errors import UnknownWorkflow, WorkflowUnavailable
from .runner import Runner

log = logging.getLogger(__name__)

RUNNERS_GROUP = "webapp.runners"
WORKFLOWS_GROUP = "webapp.workflows"
RUNNER, WORKFLOW = "runner", "workflow"
OK, BROKEN, DISABLED = "ok", "broken", "disabled"
CONFIG_SOURCE = "config:WORKFLOWS"
DENY_LIST_KEY = "WEBAPP_DISABLED_PLUGINS"

EntryPoints = Callable[..., Iterable[importlib.metadata.EntryPoint]]


@dataclass(frozen=True)
class PluginRecord:
    """One runner or workflow as discovered: where it came from, and whether
    it can be used (``status`` ok, broken or disabled, with the ``reason``)."""

    kind: str
    name: str
    source: str
    distribution: str | None
    version: str | None
    status: str
    reason: str | None = None
    obj: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (``flask runners list --json``, the API)."""
        described: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "source": self.source,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
        }
        if self.kind == WORKFLOW and self.ok:
            described["steps"] = self.obj.describe()["steps"]
        return described


class Registry:
    """Every runner and workflow discovered, usable or not."""

    def __init__(self, records: Iterable[PluginRecord]) -> None:
        self.records = tuple(sorted(records, key=lambda r: (r.kind != RUNNER, r.name, r.source)))
        self._usable = {(r.kind, r.name): r.obj for r in self.records if r.ok}

    def names(self, kind: str) -> list[str]:
        """The names of the usable runners or workflows."""
        return sorted(name for k, name in self._usable if k == kind)

    def runner(self, name: str) -> type[Runner]:
        """A usable runner; ``LookupError`` naming why not."""
        try:
            return self._usable[(RUNNER, name)]  # type: ignore[no-any-return]
        except KeyError:
            raise LookupError(self._why_not(RUNNER, name)) from None

    def workflow(self, name: str) -> Workflow:
        """A usable workflow; ``UnknownWorkflow`` or ``WorkflowUnavailable``
        (with the reason) otherwise."""
        found = self._usable.get((WORKFLOW, name))
        if found is not None:
            return found  # type: ignore[no-any-return]
        if any(r.kind == WORKFLOW and r.name == name for r in self.records):
            raise WorkflowUnavailable(self._why_not(WORKFLOW, name))
        raise UnknownWorkflow(
            f"no workflow named {name!r}; available: {', '.join(self.names(WORKFLOW)) or 'none'}"
        )

    def describe(self) -> list[dict[str, Any]]:
        return [record.describe() for record in self.records]

    def _why_not(self, kind: str, name: str) -> str:
        found = [r for r in self.records if r.kind == kind and r.name == name]
        if not found:
            return f"{kind} {name!r} is not installed"
        return "; ".join(f"{kind} {name!r} is {r.status}: {r.reason}" for r in found)


def discover(
    *,
    disabled: Collection[str] = (),
    config_workflows: Mapping[str, Any] | None = None,
    entry_points: EntryPoints = importlib.metadata.entry_points,
) -> Registry:
    """Load the runners, then the workflows (which need the runners)."""
    deny = DenyList(disabled)
    runners = _register(_from_entry_points(entry_points, RUNNERS_GROUP, RUNNER), deny, _check_runner)
    usable = {r.name for r in runners if r.ok}
    candidates = _from_entry_points(entry_points, WORKFLOWS_GROUP, WORKFLOW)
    candidates += _from_config(config_workflows or {})
    workflows = _register(candidates, deny, partial(_check_workflow, runners=runners, usable=usable))
    return Registry(runners + workflows)


class DenyList:
    """Names of runners and workflows, or of distributions, not to load."""

    def __init__(self, names: Collection[str]) -> None:
        self.names = frozenset(names)
        self.distributions = frozenset(canonical_distribution(name) for name in names)

    def denies(self, candidate: _Candidate) -> bool:
        if candidate.name in self.names:
            return True
        dist = candidate.distribution
        return dist is not None and canonical_distribution(dist) in self.distributions


def canonical_distribution(name: str) -> str:
    """PEP 503 normalisation: ``Webapp_Roadmap`` and ``webapp-roadmap`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_deny_list(value: Any) -> list[str]:
    """``WEBAPP_DISABLED_PLUGINS``: comma-separated names, or a list."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


@dataclass(frozen=True)
class _Candidate:
    """An entry point or a configured workflow, before it is loaded."""

    kind: str
    name: str
    source: str
    distribution: str | None
    version: str | None
    load: Callable[[], Any]

    def record(self, status: str, reason: str | None = None, obj: Any = None) -> PluginRecord:
        return PluginRecord(self.kind, self.name, self.source, self.distribution, self.version,
                            status, reason, obj)

    def origin(self) -> str:
        if self.distribution is None:
            return self.source
        return f"{self.source} ({self.distribution} {self.version})"


class _Rejected(Exception):
    """A loaded object is not what its group expects (the message says why)."""


def _from_entry_points(entry_points: EntryPoints, group: str, kind: str) -> list[_Candidate]:
    candidates = []
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        candidates.append(_Candidate(
            kind, ep.name, ep.value,
            None if dist is None else dist.name,
            None if dist is None else dist.version,
            ep.load,
        ))
    return candidates


def _from_config(config_workflows: Mapping[str, Any]) -> list[_Candidate]:
    if not isinstance(config_workflows, Mapping):
        raise ValueError(f"WORKFLOWS must map workflow names to steps, got {config_workflows!r}")
    return [
        _Candidate(WORKFLOW, str(name), CONFIG_SOURCE, None, None, partial(_configured, name, spec))
        for name, spec in config_workflows.items()
    ]


def _configured(name: str, spec: Any) -> Workflow:
    try:
        return workflow_from_config(name, spec)
    except ValueError as exc:
        raise _Rejected(f"invalid definition: {exc}") from None


def _register(
    candidates: list[_Candidate], deny: DenyList, check: Callable[[str, Any], Any]
) -> list[PluginRecord]:
    """Load and check each candidate on its own; never raise."""
    enabled = [c for c in candidates if not deny.denies(c)]
    claims = Counter(c.name for c in enabled)
    records = []
    for candidate in candidates:
        if not deny.denies(candidate) and claims[candidate.name] > 1:
            others = [c.origin() for c in enabled if c.name == candidate.name and c is not candidate]
            record = candidate.record(BROKEN, f"duplicate {candidate.kind} name {candidate.name!r}, "
                                              f"also declared by {', '.join(others)}")
        else:
            record = _load(candidate, deny, check)
        _report(record)
        records.append(record)
    return records


def _load(candidate: _Candidate, deny: DenyList, check: Callable[[str, Any], Any]) -> PluginRecord:
    if deny.denies(candidate):
        return candidate.record(DISABLED, f"disabled by {DENY_LIST_KEY}")
    try:
        check_name(candidate.name, f"the {candidate.kind} name")
    except ValueError as exc:
        return candidate.record(BROKEN, str(exc))
    try:
        obj = check(candidate.name, candidate.load())
    except _Rejected as exc:
        return candidate.record(BROKEN, str(exc))
    except Exception as exc:  # whatever a plugin's import raises must not stop the app
        return candidate.record(BROKEN, f"{type(exc).__name__}: {exc}")
    return candidate.record(OK, obj=obj)


def _report(record: PluginRecord) -> None:
    if record.status == BROKEN:
        log.warning("%s %r from %s is broken: %s", record.kind, record.name, record.source, record.reason)
    elif record.status == DISABLED:
        log.info("%s %r from %s is disabled", record.kind, record.name, record.source)


def _check_runner(name: str, obj: Any) -> type[Runner]:
    if not (isinstance(obj, type) and issubclass(obj, Runner)):
        raise _Rejected(f"{obj!r} is not a subclass of webapp.workflow.Runner")
    if inspect.isabstract(obj):
        raise _Rejected(f"{obj.__qualname__} does not implement run()")
    declared = getattr(obj, "name", None)
    if declared != name:
        raise _Rejected(f"{obj.__qualname__}.name is {declared!r}, but its entry point is named {name!r}")
    for attribute in ("input_schema", "output_schema"):
        schema = getattr(obj, attribute)
        if schema is not None and not (isinstance(schema, type) and issubclass(schema, Schema)):
            raise _Rejected(f"{obj.__qualname__}.{attribute} must be a marshmallow Schema class or None")
    return obj


def _check_workflow(name: str, obj: Any, *, runners: list[PluginRecord], usable: set[str]) -> Workflow:
    if not isinstance(obj, Workflow) and callable(obj):
        obj = obj()
    if not isinstance(obj, Workflow):
        raise _Rejected(f"{obj!r} is not a webapp.workflow.Workflow (nor a callable returning one)")
    if obj.name != name:
        raise _Rejected(f"the workflow is named {obj.name!r}, but its entry point is named {name!r}")
    problems = []
    for step in obj.steps:
        if step.runner not in usable:
            found = [r for r in runners if r.name == step.runner]
            state = f"is {found[0].status}" if found else "is not installed"
            problems.append(f"step {step.name!r}: runner {step.runner!r} {state}")
    if problems:
        raise _Rejected("; ".join(problems))
    return obj
