"""POST /api/v1/logs: records logged over HTTP land like any other."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("celery_worker")


def test_posted_records_are_buffered_and_land(client, app, log_table, trace_id):
    response = client.post("/api/v1/logs", json={"records": [
        {"trace_id": trace_id, "level": "info", "category": "agent", "message": "remote start",
         "agent_name": "remote", "details": {"host": "elsewhere"}},
        {"trace_id": trace_id, "level": "error", "category": "agent", "message": "remote failed",
         "duration_ms": 12.5},
    ]})
    assert response.status_code == 202
    assert response.json["accepted"] == 2
    app.extensions["execlog"].flush(timeout=10)
    rows = log_table.wait_for_count(trace_id, 2)
    assert [str(r["id"]) for r in rows] == response.json["ids"]
    assert rows[0]["details"] == {"host": "elsewhere"} and rows[1]["duration_ms"] == 12.5


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "records"),
        ({"records": []}, "records"),
        ({"records": [{"trace_id": "t", "level": "loud", "category": "agent", "message": "m"}]}, "level"),
        ({"records": [{"trace_id": "t" * 300, "level": "info", "category": "agent", "message": "m"}]},
         "trace_id"),
        ({"records": [{"level": "info", "category": "agent", "message": "m"}]}, "trace_id"),
    ],
)
def test_bad_records_get_a_problem_naming_the_field_and_nothing_is_logged(client, app, body, field):
    before = app.extensions["execlog"].stats()["buffered"]
    response = client.post("/api/v1/logs", json=body)
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 400
    assert field in str(response.json["errors"])
    assert app.extensions["execlog"].stats()["buffered"] == before
