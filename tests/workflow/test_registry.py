"""The registry, fed entry points directly: every way a plugin can be
broken is reported with its reason, and the other plugins still load."""

from __future__ import annotations

import logging
import re
from importlib.metadata import EntryPoint

import pytest

from webapp.config import config_from_env
from webapp.workflow.settings import WorkflowSettings
from webapp.workflow import UnknownWorkflow, WorkflowUnavailable
from webapp.workflow.registry import (
    BROKEN,
    DISABLED,
    OK,
    RUNNERS_GROUP,
    WORKFLOWS_GROUP,
    discover,
    parse_deny_list,
)

from . import sample_plugins

SAMPLES = "tests.workflow.sample_plugins"


def entry_points(runners=(), workflows=()):
    """What ``importlib.metadata.entry_points`` would return for these
    ``(name, value)`` pairs (a value without ":" is an attribute of
    sample_plugins)."""

    def value(target: str) -> str:
        return target if ":" in target else f"{SAMPLES}:{target}"

    groups = {
        RUNNERS_GROUP: [EntryPoint(name, value(target), RUNNERS_GROUP) for name, target in runners],
        WORKFLOWS_GROUP: [EntryPoint(name, value(target), WORKFLOWS_GROUP) for name, target in workflows],
    }
    return lambda group: groups[group]


def record(registry, kind, name):
    (found,) = [r for r in registry.records if r.kind == kind and r.name == name]
    return found


def test_a_runner_and_a_workflow_load():
    registry = discover(entry_points=entry_points([("echo", "Echo")], [("echo-twice", "ECHO_TWICE")]))
    assert registry.runner("echo") is sample_plugins.Echo
    assert registry.workflow("echo-twice").runners == ["echo", "echo"]
    assert [(r.kind, r.name, r.status, r.reason) for r in registry.records] == [
        ("runner", "echo", OK, None), ("workflow", "echo-twice", OK, None)]


@pytest.mark.parametrize(
    "name, target, reason",
    [
        ("echo", "not_a_runner",
         r"<function not_a_runner at .*> is not a subclass of webapp.workflow.Runner"),
        ("echo", "Misnamed", r"Misnamed.name is 'something-else', but its entry point is named 'echo'"),
        ("unfinished", "Unfinished", r"Unfinished does not implement run\(\)"),
        ("bad-schema", "BadSchema", r"BadSchema.input_schema must be a marshmallow Schema class or None"),
        ("echo", "NoSuchThing", r"AttributeError: module '.*sample_plugins' has no attribute 'NoSuchThing'"),
        ("echo", "no_such_module:Echo", r"ModuleNotFoundError: No module named 'no_such_module'"),
        ("Echo", "Echo", r"the runner name must be 1 to 100 characters of a-z, .*; got 'Echo'"),
    ],
)
def test_a_broken_runner_is_reported_with_the_reason_and_the_others_load(name, target, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="webapp.workflow.registry"):
        registry = discover(entry_points=entry_points([(name, target), ("upper", "Upper")]))
    broken = record(registry, "runner", name)
    assert broken.status == BROKEN
    assert re.fullmatch(reason, broken.reason), broken.reason
    assert f"runner {name!r} from {broken.source} is broken: {broken.reason}" in caplog.text
    assert registry.runner("upper") is sample_plugins.Upper


@pytest.mark.parametrize(
    "name, target, reason",
    [
        ("echo-once", "make_echo_once", None),
        ("echo-once", "make_nothing",
         r"\['echo'\] is not a webapp.workflow.Workflow \(nor a callable returning one\)"),
        ("echo-once", "explode", r"RuntimeError: the factory broke"),
        ("echo-once", "ECHO_TWICE",
         r"the workflow is named 'echo-twice', but its entry point is named 'echo-once'"),
        ("uses-missing", "USES_MISSING", r"step 'teleport': runner 'teleport' is not installed"),
    ],
)
def test_workflows_may_be_factories_and_may_only_use_available_runners(name, target, reason):
    registry = discover(entry_points=entry_points([("echo", "Echo")], [(name, target)]))
    found = record(registry, "workflow", name)
    if reason is None:
        assert (found.status, found.reason) == (OK, None)
    else:
        assert found.status == BROKEN
        assert re.fullmatch(reason, found.reason), found.reason


def test_a_duplicate_name_breaks_every_claimant_unloaded_and_the_workflows_that_use_it():
    registry = discover(entry_points=entry_points(
        [("echo", "Echo"), ("echo", "no_such_module:Echo")], [("echo-twice", "ECHO_TWICE")]))
    assert sorted((r.status, r.reason) for r in registry.records if r.kind == "runner") == [
        (BROKEN, "duplicate runner name 'echo', also declared by no_such_module:Echo"),
        (BROKEN, f"duplicate runner name 'echo', also declared by {SAMPLES}:Echo"),
    ]
    assert record(registry, "workflow", "echo-twice").reason == (
        "step 'echo': runner 'echo' is broken; step 'again': runner 'echo' is broken")
    with pytest.raises(WorkflowUnavailable, match="workflow 'echo-twice' is broken: step 'echo'"):
        registry.workflow("echo-twice")


def test_denied_names_are_not_imported():
    registry = discover(
        entry_points=entry_points([("echo", "Echo"), ("gone", "no_such_module:X")]),
        disabled=["gone"],
    )
    gone = record(registry, "runner", "gone")
    # Never imported: importing it would have made it broken (ModuleNotFoundError).
    assert (gone.status, gone.reason) == (DISABLED, "disabled by WEBAPP_DISABLED_PLUGINS")
    assert record(registry, "runner", "echo").status == OK


def test_configured_workflows_join_the_plugins_and_a_bad_one_is_reported():
    registry = discover(
        entry_points=entry_points([("echo", "Echo")]),
        config_workflows={
            "shout": ["echo", {"runner": "echo", "name": "louder", "retry": {"max_attempts": 1}}],
            "typo": [{"runer": "echo"}],
            "ghost": ["teleport"],
        },
        disabled=["ghost"],
    )
    assert record(registry, "workflow", "shout").status == OK
    assert registry.workflow("shout").steps[1].retry.max_attempts == 1
    assert record(registry, "workflow", "typo").reason == (
        "invalid definition: step: unknown key(s) runer; known: name, retry, runner")
    assert record(registry, "workflow", "ghost").status == DISABLED
    shout = record(registry, "workflow", "shout")
    assert (shout.source, shout.distribution, shout.version) == ("config:WORKFLOWS", None, None)


def test_workflows_configured_as_anything_but_a_mapping_stop_the_app():
    with pytest.raises(ValueError, match="WORKFLOWS must map workflow names to steps"):
        discover(entry_points=entry_points(), config_workflows=["roadmap"])


def test_an_unknown_workflow_names_the_available_ones():
    registry = discover(entry_points=entry_points([("echo", "Echo")], [("echo-twice", "ECHO_TWICE")]))
    with pytest.raises(UnknownWorkflow, match="no workflow named 'nope'; available: echo-twice"):
        registry.workflow("nope")
    with pytest.raises(LookupError, match="runner 'nope' is not installed"):
        registry.runner("nope")


@pytest.mark.parametrize(
    "value, names",
    [(None, []), ("", []), (["a"], ["a"]),
     (" roadmap, webapp-synthetic ,,", ["roadmap", "webapp-synthetic"])],
)
def test_the_deny_list_is_comma_separated(value, names):
    assert parse_deny_list(value) == names


def test_workflows_and_the_deny_list_come_from_the_environment():
    settings = WorkflowSettings.from_config(
        config_from_env({"WORKFLOWS": '{"nightly": ["emit"]}', "WEBAPP_DISABLED_PLUGINS": "flaky"}))
    assert (settings.workflows, settings.disabled_plugins) == ({"nightly": ["emit"]}, "flaky")
    assert WorkflowSettings.from_config(config_from_env({})).workflows == {}


@pytest.mark.parametrize(
    "value, message",
    [("{nightly: [emit]}", "WORKFLOWS must be a JSON object: Expecting property name"),
     ('["emit"]', "WORKFLOWS must be a JSON object, got list")],
)
def test_bad_workflows_in_the_environment_name_the_variable(value, message):
    with pytest.raises(ValueError, match=message):
        WorkflowSettings.from_config(config_from_env({"WORKFLOWS": value}))
