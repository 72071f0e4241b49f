"""GET /api/v1/executions/<id>/logs.ndjson and logs.txt: every record, in
order, with the listing's filters, streamed a page at a time."""

from __future__ import annotations

import json
import tracemalloc
import uuid

import sqlalchemy as sa

from webapp.api import downloads
from webapp.queries.reads import LogFilter

from .test_executions import assert_problem


def url(execution_id: str, kind: str = "ndjson", query: str = "") -> str:
    return f"/api/v1/executions/{execution_id}/logs.{kind}{query}"


def test_ndjson_has_every_record_in_order_across_pages(client, rows, execution_id, monkeypatch):
    monkeypatch.setattr(downloads, "PAGE_RECORDS", 7)
    ids = rows.logs(execution_id, 30)
    rows.logs(str(uuid.uuid4()), 3, prefix="another execution")

    response = client.get(url(execution_id))

    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "application/x-ndjson"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="execution-{execution_id}.ndjson"'
    lines = response.get_data(as_text=True).splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["id"] for record in records] == ids
    listed = client.get(f"/api/v1/executions/{execution_id}/logs?limit=100").json["items"]
    assert records == listed, "each line is the record as the listing shows it"


def test_a_log_of_a_whole_number_of_pages_ends(client, rows, execution_id, monkeypatch):
    monkeypatch.setattr(downloads, "PAGE_RECORDS", 5)
    ids = rows.logs(execution_id, 10)
    body = client.get(url(execution_id)).get_data(as_text=True)
    assert body.endswith("\n") and [json.loads(line)["id"] for line in body.splitlines()] == ids


def test_the_downloads_take_the_listing_filters(client, rows, execution_id):
    rows.log(execution_id, "tool call", level="debug", category="tool")
    kept = rows.log(execution_id, "Catalog searched", level="warning", step="intent", agent_name="intent")
    rows.log(execution_id, "catalog, but another step", level="warning", step="schedule")
    rows.log(execution_id, "nothing to see", level="error", step="intent")

    query = "?level=info&q=CATALOG&step=intent&agent_name=intent&category=agent"
    records = [json.loads(line) for line in client.get(url(execution_id, query=query)).get_data(as_text=True)
               .splitlines()]
    assert [record["id"] for record in records] == [kept]


def test_text_is_one_readable_line_a_record_with_its_details(client, rows, execution_id, db_engine):
    first = rows.log(execution_id, "analysing the goal", step="intent", agent_name="intent-analyst")
    second = rows.log(execution_id, "two\nlines", level="error")
    with db_engine.begin() as connection:
        connection.execute(sa.text("UPDATE execution_logs SET details = CAST(:d AS jsonb) WHERE id = :i"),
                           {"d": json.dumps({"hits": 2}), "i": first})

    response = client.get(url(execution_id, "txt"))

    assert response.mimetype == "text/plain"
    assert response.headers["Content-Disposition"] == f'attachment; filename="execution-{execution_id}.txt"'
    lines = response.get_data(as_text=True).splitlines()
    listed = {r["id"]: r for r in client.get(f"/api/v1/executions/{execution_id}/logs").json["items"]}
    assert lines == [
        f"{listed[first]['created_at']}  INFO    agent     [intent] intent-analyst: analysing the goal  "
        '{"hits": 2}',
        f"{listed[second]['created_at']}  ERROR   agent     two\\nlines",
    ]


def test_an_unknown_execution_or_filter_is_a_problem(client, execution_id):
    assert_problem(client.get(url(str(uuid.uuid4()))), 404, "Execution not found")
    body = assert_problem(client.get(url(execution_id, "txt", "?level=loud")), 400, "Invalid request")
    assert "level" in body["errors"]["query"]
    body = assert_problem(client.get(url(execution_id, query="?limit=5")), 400, "Invalid request")
    assert "limit" in body["errors"]["query"], "a download has no pages to size"


def test_a_download_holds_one_page_in_memory_whatever_the_log_size(app, rows, execution_id, monkeypatch):
    rows.logs(execution_id, 6000, prefix="x" * 200)

    def peak(page_records: int) -> tuple[int, int]:
        size = 0
        tracemalloc.start()
        try:
            for record in downloads.records(app, execution_id, LogFilter(), page_records=page_records):
                size += len(downloads._ndjson(record))
            return tracemalloc.get_traced_memory()[1], size
        finally:
            tracemalloc.stop()

    small_pages, body_size = peak(100)
    large_pages, _ = peak(3000)
    assert body_size > 1_500_000
    assert small_pages < body_size / 4, "far less than the body is held"
    assert small_pages * 5 < large_pages, "what is held grows with the page, not with the log"
