"""/api/v1/executions: start, list, read, retry; every bad request is a
problem document naming what is wrong."""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone

import pytest

from .conftest import seconds_ago, wait_for_status

pytestmark = pytest.mark.usefixtures("celery_worker")

GOAL = {"goal": "I am new to Python, 1 hour a day, ready in 4 months"}


def assert_problem(response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["title"] and body["type"]
    text = str(body)
    for fragment in fragments:
        assert fragment in text, body
    return body


def test_starting_a_workflow_queues_it_and_answers_with_its_links(client):
    response = client.post("/api/v1/executions", json={"workflow": "roadmap", "input": GOAL})

    assert response.status_code == 202
    body = response.json
    execution_id = body["id"]
    assert (body["workflow"], body["input"], body["attempts"]) == ("roadmap", GOAL, 0)
    assert body["status"] in ("queued", "running", "succeeded")
    assert [step["name"] for step in body["steps"]] == ["intent", "curriculum", "validate", "schedule"]
    base = f"/api/v1/executions/{execution_id}"
    assert body["links"] == {"self": base, "logs": f"{base}/logs", "events": f"{base}/events",
                             "retry": f"{base}/retry"}

    done = wait_for_status(client, execution_id)
    assert done["status"] == "succeeded" and done["error"] is None
    assert done["result"]["topic"] == "python"
    assert [(s["name"], s["status"], s["attempts"]) for s in done["steps"]] == [
        ("intent", "succeeded", 1), ("curriculum", "succeeded", 1), ("validate", "succeeded", 1),
        ("schedule", "succeeded", 1)]
    assert done["started_at"] and done["finished_at"] and done["current_step"] is None


def test_the_same_idempotency_key_gives_the_same_execution_and_another_body_a_conflict(client):
    key = f"key-{uuid.uuid4()}"
    first = client.post("/api/v1/executions", json={"workflow": "synthetic-emit", "input": {"records": 1}},
                        headers={"Idempotency-Key": key})
    again = client.post("/api/v1/executions", json={"workflow": "synthetic-emit", "input": {"records": 1}},
                        headers={"Idempotency-Key": key})
    other = client.post("/api/v1/executions", json={"workflow": "synthetic-emit", "input": {"records": 2}},
                        headers={"Idempotency-Key": key})

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json["id"] == first.json["id"] and again.json["idempotency_key"] == key
    assert_problem(other, 409, "urn:webapp:problem:idempotency-conflict",
                   f"the idempotency key '{key}' was used for another request", first.json["id"])


@pytest.mark.parametrize(
    "kwargs, status, fragments",
    [
        ({"json": {"workflow": "nope", "input": {}}}, 404,
         ["urn:webapp:problem:unknown-workflow", "no workflow named 'nope'; available: "]),
        ({"json": {"workflow": "roadmap", "input": {"goal": "py", "level": "guru"}}}, 422,
         ["urn:webapp:problem:invalid-input", "the input does not fit workflow 'roadmap'",
          "'level': ['Must be one of: beginner, intermediate, advanced.']"]),
        ({"json": {"workflow": "roadmap", "input": ["learn"]}}, 400,
         ["input (json): Not a valid mapping type."]),
        ({"json": {"input": GOAL}}, 400, ["workflow (json): Missing data for required field."]),
        ({"json": {"workflow": "roadmap", "inputs": GOAL}}, 400, ["inputs (json): Unknown field."]),
        ({"data": '{"workflow": "roadmap",', "content_type": "application/json"}, 400,
         ["urn:webapp:problem:malformed-json", "the body is not valid JSON: Expecting"]),
        ({"data": "workflow=roadmap", "content_type": "application/x-www-form-urlencoded"}, 415,
         ["the body must be application/json, not application/x-www-form-urlencoded"]),
        ({"json": {"workflow": "roadmap"}, "headers": {"Idempotency-Key": ""}}, 400,
         ["Idempotency-Key (headers): Length must be between 1 and 255."]),
        ({"json": {"workflow": "roadmap"}, "headers": {"Idempotency-Key": "caf\u00e9"}}, 400,
         ["Idempotency-Key (headers): Must be printable ASCII."]),
    ],
)
def test_a_bad_start_request_is_refused_naming_the_problem_and_stores_nothing(
    client, db_engine, kwargs, status, fragments
):
    with db_engine.connect() as connection:
        before = connection.exec_driver_sql("SELECT count(*) FROM executions").scalar()
    assert_problem(client.post("/api/v1/executions", **kwargs), status, *fragments)
    with db_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM executions").scalar() == before


def test_an_oversized_body_gets_413(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1000)
    response = app.test_client().post("/api/v1/executions",
                                      json={"workflow": "roadmap", "input": {"goal": "x" * 2000}})
    assert_problem(response, 413, "the body is larger than 1000 bytes (API_MAX_BODY_BYTES)")


def test_reading_an_execution(client, rows):
    execution_id = rows.execution(workflow="roadmap", status="failed", current_step="validate", attempts=1,
                                  error='{"kind": "invalid_input", "message": "too little time"}')
    body = client.get(f"/api/v1/executions/{execution_id}").json
    assert (body["status"], body["current_step"], body["attempts"]) == ("failed", "validate", 1)
    assert body["error"] == {"kind": "invalid_input", "message": "too little time"}
    assert body["result"] is None and body["steps"] == []

    missing = uuid.uuid4()
    assert_problem(client.get(f"/api/v1/executions/{missing}"), 404, f"no execution {missing}")
    assert_problem(client.get("/api/v1/executions/not-a-uuid"), 404, "about:blank")


def test_listing_filters_and_pages_newest_first(client, rows):
    workflow = f"list-{uuid.uuid4().hex[:12]}"
    ids = [rows.execution(workflow=workflow, status=("failed" if i % 3 == 0 else "succeeded"),
                          created_at=seconds_ago(100 - i)) for i in range(7)]

    def listed(**params):
        return client.get("/api/v1/executions", query_string={"workflow": workflow, **params}).json

    first = listed(limit=3)
    assert [e["id"] for e in first["items"]] == ids[::-1][:3] and first["next"]
    assert "steps" not in first["items"][0] and first["items"][0]["links"]["self"].endswith(ids[-1])
    second = listed(limit=3, cursor=first["next"])
    third = listed(limit=3, cursor=second["next"])
    assert [e["id"] for e in second["items"] + third["items"]] == ids[::-1][3:]
    assert third["next"] is None
    assert [e["id"] for e in listed(status="failed")["items"]] == [ids[6], ids[3], ids[0]]
    window = listed(created_after=seconds_ago(99.5).isoformat(), created_before=seconds_ago(96.5).isoformat())
    assert [e["id"] for e in window["items"]] == [ids[3], ids[2], ids[1]]
    far_east = seconds_ago(99.5).astimezone(timezone(timedelta(hours=20))).isoformat()  # beyond PostgreSQL's
    assert [e["id"] for e in listed(created_after=far_east)["items"]][-1] == ids[1]


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("status=done", "status (query): Must be one of: queued, running, succeeded, failed."),
        ("limit=0", "limit (query): Must be between 1 and 1000 (API_MAX_LIMIT)."),
        ("limit=1001", "limit (query): Must be between 1 and 1000 (API_MAX_LIMIT)."),
        ("limit=ten", "limit (query): Not a valid integer."),
        ("created_after=yesterday", "created_after (query): Not a valid datetime."),
        ("created_after=2026-01-01T00:00:00", "created_after (query): Not a valid aware datetime."),
        ("workflow=Road Map", "workflow (query): Not a workflow name."),
        ("created_after=0001-01-01T00:00:00%2B01:00", "created_after (query): Out of range."),
        ("stauts=failed", "stauts (query): Unknown field."),
        ("cursor=bm90IGEgY3Vyc29y", "cursor: 'bm90IGEgY3Vyc29y' is not a cursor of this listing"),
        ("cursor=%25%25", "cursor: '%%' is not a cursor of this listing"),
    ],
)
def test_a_bad_listing_request_is_refused_naming_the_parameter(client, query, fragment):
    assert_problem(client.get(f"/api/v1/executions?{query}"), 400, fragment)


def test_the_page_size_cap_is_a_setting(app_factory):
    client = app_factory(API_MAX_LIMIT=5).test_client()
    assert client.get("/api/v1/executions?limit=5").status_code == 200
    assert_problem(client.get("/api/v1/executions?limit=6"), 400, "Must be between 1 and 5 (API_MAX_LIMIT).")


def test_a_failed_execution_is_retried_from_its_failed_step_and_others_get_409(client):
    started = client.post("/api/v1/executions",
                          json={"workflow": "flaky", "input": {"fail_times": 1, "failure": "invalid_input"}})
    execution_id = started.json["id"]
    failed = wait_for_status(client, execution_id)
    assert (failed["status"], failed["error"]["kind"]) == ("failed", "invalid_input")

    retried = client.post(f"/api/v1/executions/{execution_id}/retry")
    assert retried.status_code == 202 and retried.json["id"] == execution_id
    done = wait_for_status(client, execution_id, ("succeeded",))
    assert done["attempts"] == 2
    assert [(s["name"], s["attempts"]) for s in done["steps"]] == [("before", 1), ("flaky", 2), ("after", 1)]

    assert_problem(client.post(f"/api/v1/executions/{execution_id}/retry"), 409,
                   "urn:webapp:problem:execution-not-resumable",
                   f"execution {execution_id} is succeeded; only a failed execution can be resumed")
    missing = uuid.uuid4()
    assert_problem(client.post(f"/api/v1/executions/{missing}/retry"), 404, f"no execution {missing}")


def test_a_wrong_method_gets_405_with_allow(client):
    body = assert_problem(client.delete("/api/v1/executions"), 405, "Method Not Allowed")
    assert body["type"] == "about:blank"
    allowed = client.delete("/api/v1/executions").headers["Allow"]
    assert set(allowed.split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
