"""The synthetic test plugin's inputs are capped: one request could make
its ``emit`` runner sleep a worker for years (a rate near 0) or queue
gigabytes of records (a million records of 32 KiB)."""

from __future__ import annotations

import pytest

from webapp.config import celery_config

from webapp.workflow import InvalidInput, start_execution

from .conftest import start


@pytest.mark.parametrize(
    "workflow, data, field, message",
    [
        ("synthetic-emit", {"records": 10, "rate": 1e-9}, "rate",
         "Must be 0 (as fast as it can) or at least 0.1"),
        ("synthetic-emit", {"records": 1_000_000}, "records", "less than or equal to 100000"),
        ("synthetic-emit", {"records": 100_000, "size": 32_768}, "records", "records x size may be 16777216"),
        ("synthetic-emit", {"records": 100_000, "rate": 1}, "rate", "records / rate may be 600 s at most"),
        ("synthetic-emit", {"rate": 1e308}, "rate", "less than or equal to 1000000"),
        ("flaky", {"fail_times": 10**40}, "fail_times", "less than or equal to 10"),
    ],
)
def test_inputs_beyond_the_caps_are_refused_naming_the_field(spare_app, workflow, data, field, message):
    with spare_app.app_context(), pytest.raises(InvalidInput) as refused:
        start_execution(workflow, data)
    assert any(message in text for text in refused.value.fields[field]), refused.value.fields


def test_inputs_within_the_caps_are_taken(spare_app):
    assert start(spare_app, "synthetic-emit", {"records": 60, "rate": 0.1})
    assert start(spare_app, "synthetic-emit", {"records": 100_000, "size": 160})


@pytest.fixture
def spare_app(app_factory, spare_broker, tmp_path):
    return app_factory(CELERY=celery_config(spare_broker, tmp_path))
