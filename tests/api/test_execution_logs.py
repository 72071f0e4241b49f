"""GET /api/v1/executions/<id>/logs: time order, filters, keyset pages that
stay put while records are added."""

from __future__ import annotations

import uuid

import pytest

from .test_executions import assert_problem


def logs_url(execution_id: str) -> str:
    return f"/api/v1/executions/{execution_id}/logs"


def messages(page: dict) -> list[str]:
    return [item["message"] for item in page["items"]]


def test_logs_come_in_time_order_with_every_field(client, rows, execution_id):
    rows.log(execution_id, "second", ago=1, step="intent", agent_name="analyst", level="debug",
             category="tool")
    rows.log(execution_id, "first", ago=2)
    rows.log(execution_id, "third", ago=0)
    rows.log(f"other-{execution_id}", "not this execution's")

    page = client.get(logs_url(execution_id)).json
    assert messages(page) == ["first", "second", "third"] and page["next"] is None
    second = page["items"][1]
    assert {k: second[k] for k in ("trace_id", "level", "category", "step", "agent_name")} == {
        "trace_id": execution_id, "level": "debug", "category": "tool", "step": "intent",
        "agent_name": "analyst"}
    assert set(second) == {"id", "trace_id", "level", "category", "message", "step", "agent_name",
                           "roadmap_id", "concept_id", "details", "duration_ms", "attempt", "created_at"}


def test_filters_by_minimum_level_category_step_agent_and_text(client, rows, execution_id):
    rows.log(execution_id, "a debug line", level="debug", category="tool", step="intent")
    rows.log(execution_id, "an info line", level="info", category="agent", step="intent",
             agent_name="analyst")
    rows.log(execution_id, "a warning: 100% done_ok", level="warning", category="agent", step="schedule")
    rows.log(execution_id, "an error line", level="error", category="workflow", agent_name="analyst")
    rows.log(execution_id, "100 percent, done ok", level="info", category="retry")

    def found(**params):
        return messages(client.get(logs_url(execution_id), query_string=params).json)

    assert found(level="warning") == ["a warning: 100% done_ok", "an error line"]
    assert found(level="debug") == found()
    assert found(category="agent") == ["an info line", "a warning: 100% done_ok"]
    assert found(step="intent") == ["a debug line", "an info line"]
    assert found(agent_name="analyst") == ["an info line", "an error line"]
    assert found(q="LINE", level="info") == ["an info line", "an error line"]
    # LIKE wildcards in the text are literal characters, not patterns:
    assert found(q="100%") == ["a warning: 100% done_ok"]
    assert found(q="done_ok") == ["a warning: 100% done_ok"]
    assert found(q="'; DROP TABLE execution_logs; --") == []


def test_pages_neither_skip_nor_repeat_while_records_are_added(client, rows, execution_id):
    rows.logs(execution_id, 25, prefix="before")
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params = {"limit": 4, **({"after": after} if after else {})}
        page = client.get(logs_url(execution_id), query_string=params).json
        seen += [item["id"] for item in page["items"]]
        pages += 1
        rows.log(execution_id, f"added while paging {pages}")  # lands after every record read so far
        if page["next"] is None:
            break
        assert page["next"] == page["items"][-1]["id"]
        after = page["next"]
        assert pages < 50

    whole = client.get(logs_url(execution_id), query_string={"limit": 1000}).json
    everything = [item["id"] for item in whole["items"]]
    assert len(seen) == len(set(seen)), "a record was served twice"
    assert seen == everything[:len(seen)], "pages are not in order, or skipped a record"
    assert len(everything) == 25 + pages and len(seen) == len(everything) - 1  # all but the last one added


def test_a_record_stored_late_with_an_older_time_sorts_before_the_cursor(client, rows, execution_id):
    rows.logs(execution_id, 3)
    page = client.get(logs_url(execution_id), query_string={"limit": 3}).json
    rows.log(execution_id, "replayed from a spool", ago=60)
    rows.log(execution_id, "new")
    rest = client.get(logs_url(execution_id), query_string={"after": page["items"][-1]["id"]}).json
    assert messages(rest) == ["new"]
    assert messages(client.get(logs_url(execution_id)).json)[0] == "replayed from a spool"


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("level=loud", "level (query): Must be one of: debug, info, warning, error."),
        ("category=misc", "category (query): Must be one of: workflow, agent, tool, database, api, retry."),
        ("after=42", "after (query): Not a valid UUID."),
        ("limit=5000", "limit (query): Must be between 1 and 1000 (API_MAX_LIMIT)."),
        ("q=", "q (query): Length must be between 1 and 200."),
        ("sort=desc", "sort (query): Unknown field."),
    ],
)
def test_a_bad_log_query_is_refused_naming_the_parameter(client, execution_id, query, fragment):
    assert_problem(client.get(f"{logs_url(execution_id)}?{query}"), 400, fragment)


def test_a_cursor_of_another_execution_is_refused_and_an_unknown_execution_is_404(client, rows, execution_id):
    other = rows.execution()
    foreign = rows.log(other, "of another execution")
    assert_problem(client.get(logs_url(execution_id), query_string={"after": foreign}), 400,
                   "urn:webapp:problem:bad-cursor", f"execution {execution_id} has no log record {foreign}")
    missing = uuid.uuid4()
    assert_problem(client.get(logs_url(str(missing))), 404, f"no execution {missing}")
