"""Workflow definitions and retry policies: what plugins and configuration
may declare, and the precise errors for what they may not."""

from __future__ import annotations

import pytest

from webapp.workflow import RetryPolicy, Step, Workflow
from webapp.workflow.definition import workflow_from_config


def test_a_step_given_as_a_runner_name_is_named_after_it_and_tried_three_times_on_transient_errors():
    workflow = Workflow("w", ["emit", Step("emit", name="again")])
    assert [(s.name, s.runner) for s in workflow.steps] == [("emit", "emit"), ("again", "emit")]
    assert workflow.steps[0].retry == RetryPolicy(max_attempts=3, retry_on=frozenset({"transient"}))


def test_retry_only_for_the_kinds_and_tries_the_policy_allows():
    policy = RetryPolicy(max_attempts=3, retry_on=["transient", "runner_bug"])
    assert policy.should_retry("transient", 1) and policy.should_retry("runner_bug", 2)
    assert not policy.should_retry("transient", 3)
    assert not policy.should_retry("invalid_input", 1)


def test_backoff_doubles_up_to_the_cap_with_jitter():
    policy = RetryPolicy(max_attempts=10, backoff_base=1.0, backoff_cap=5.0)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(full * 0.5 <= d <= full for d in delays), (attempt, delays)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": 2.5}, "max_attempts must be an integer"),
        ({"backoff_base": -1}, "backoff_base must be between 0 and 600"),
        ({"backoff_cap": 3600}, "backoff_cap must be between 0 and 600"),
        ({"backoff_base": 5, "backoff_cap": 1}, "backoff_cap must be at least backoff_base"),
        ({"retry_on": ["flaky"]}, "retry_on: unknown error kind"),
        ({"retry_on": "transient"}, "retry_on must be a list"),
    ],
)
def test_a_bad_policy_names_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "name, steps, message",
    [
        ("Roadmap", ["emit"], "a workflow's name must be"),
        ("w", [], "has no steps"),
        ("w", "emit", "steps must be a list"),
        ("w", ["emit", "emit"], "step name\\(s\\) emit used twice"),
        ("w", [42], "a step must be a Step or a runner name"),
        ("w", ["no spaces"], "a step's runner must be"),
    ],
)
def test_a_bad_workflow_names_what_is_wrong(name, steps, message):
    with pytest.raises(ValueError, match=message):
        Workflow(name, steps)


def test_a_workflow_from_configuration():
    workflow = workflow_from_config("nightly", {
        "description": "emit, then a flaky step",
        "steps": ["emit",
                  {"runner": "flaky", "name": "maybe", "retry": {"max_attempts": 5, "backoff_base": 0.1}}],
    })
    assert workflow.describe() == {
        "name": "nightly",
        "description": "emit, then a flaky step",
        "steps": [
            {"name": "emit", "runner": "emit",
             "retry": {"max_attempts": 3, "backoff_base": 1.0, "backoff_cap": 30.0,
                       "retry_on": ["transient"]}},
            {"name": "maybe", "runner": "flaky",
             "retry": {"max_attempts": 5, "backoff_base": 0.1, "backoff_cap": 30.0,
                       "retry_on": ["transient"]}},
        ],
    }
    assert workflow_from_config("short", ["emit"]).runners == ["emit"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"steps": ["emit"], "owner": "me"}, "unknown key\\(s\\) owner"),
        ("emit", "steps must be a list"),
        ([{"name": "x"}], "has no runner"),
        ([{"runner": "emit", "retries": 3}], "step: unknown key\\(s\\) retries"),
        ([{"runner": "emit", "retry": {"attempts": 3}}], "retry: unknown key\\(s\\) attempts"),
        ([{"runner": "emit", "retry": 3}], "retry must be an object"),
    ],
)
def test_bad_configuration_names_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        workflow_from_config("w", spec)
