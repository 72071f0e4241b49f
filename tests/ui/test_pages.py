"""The pages as HTML (no browser needed): the list and its filters, one
execution's page and summary, bad input."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from webapp.ui import views

from ..api.conftest import seconds_ago


def listed(client, query: str = "") -> list[str]:
    response = client.get(f"/ui/{query}")
    assert response.status_code == 200 and response.mimetype == "text/html"
    return re.findall(r'<tr data-execution-id="([^"]+)"', response.get_data(as_text=True))


def test_the_list_shows_recent_executions_filtered_by_status_and_workflow(client, rows):
    began = seconds_ago(90)
    done = rows.execution(workflow="roadmap", status="succeeded", started_at=began,
                          finished_at=began + timedelta(seconds=12.5))
    running = rows.execution(workflow="flaky", status="running", started_at=seconds_ago(5))
    failed = rows.execution(workflow="roadmap", status="failed")

    everything = listed(client)
    assert everything.index(failed) < everything.index(running) < everything.index(done), "newest first"
    assert failed in listed(client, "?workflow=roadmap&status=failed")
    assert not {running, done} & set(listed(client, "?workflow=roadmap&status=failed"))
    assert running not in listed(client, "?workflow=roadmap")
    html = client.get("/ui/?status=succeeded").get_data(as_text=True)
    row = html[html.index(f'data-execution-id="{done}"'):]
    row = row[:row.index("</tr>")]
    assert "12.5 s" in row and "status-succeeded" in row and f"/ui/executions/{done}" in row
    assert '<option value="succeeded" selected>' in html


def test_the_list_pages_to_older_executions(client, rows, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    workflow = "synthetic-emit"
    made = [rows.execution(workflow=workflow, status="failed") for _ in range(3)]
    html = client.get(f"/ui/?workflow={workflow}&status=failed").get_data(as_text=True)
    older = re.search(r'<a rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert listed(client, f"?workflow={workflow}&status=failed")[:2] == made[::-1][:2]
    assert made[0] in listed(client, older[len("/ui/"):])


@pytest.mark.parametrize("query, fragment", [
    ("?status=lost", "status: Must be one of"),
    ("?workflow=Roadmap", "workflow: Not a workflow name."),
    ("?cursor=garbage", "is not a cursor of this listing"),
])
def test_a_bad_filter_is_a_400_page_that_says_why(client, query, fragment):
    response = client.get(f"/ui/{query}")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert fragment in response.get_data(as_text=True)


def test_an_execution_page_names_its_stream_downloads_and_steps(client, rows):
    execution_id = rows.execution(workflow="<script>x</script>", status="queued")
    html = client.get(f"/ui/executions/{execution_id}?level=warning&q=cat").get_data(as_text=True)
    assert f'data-events-url="/api/v1/executions/{execution_id}/events"' in html
    assert f'href="/api/v1/executions/{execution_id}/logs.ndjson"' in html
    assert '<option value="warning" selected>' in html and 'value="cat"' in html
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert '<script src="/ui/static/execution.js" defer></script>' in html
    assert client.get(f"/ui/executions/{execution_id}/summary").status_code == 200


def test_an_execution_summary_shows_each_step_with_its_status_tries_duration_and_error(client, rows):
    execution_id = rows.execution(workflow="flaky", status="failed", attempts=2, current_step="flaky",
                                  error=json.dumps({"kind": "transient", "message": "upstream <down>"}))
    steps = [(0, "before", "emit", "succeeded", 1, 12.25, None),
             (1, "flaky", "flaky", "failed", 3, 4.5, {"kind": "transient", "message": "upstream <down>"}),
             (2, "after", "emit", "skipped", 0, None, None)]
    with rows.engine.begin() as connection:
        for position, name, runner, status, attempts, duration_ms, error in steps:
            connection.execute(sa.text(
                "INSERT INTO execution_steps (execution_id, position, name, runner, status, attempts, "
                "duration_ms, error) VALUES (:e, :p, :n, :r, :s, :a, :d, :x)"),
                {"e": execution_id, "p": position, "n": name, "r": runner, "s": status, "a": attempts,
                 "d": duration_ms, "x": None if error is None else json.dumps(error)})

    html = client.get(f"/ui/executions/{execution_id}/summary").get_data(as_text=True)

    shown = [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
             for row in re.findall(r'<tr data-step="[^"]+">(.*?)</tr>', html, re.S)]
    assert shown == [["1", "before", "emit", "succeeded", "1", "12.2 ms", ""],
                     ["2", "flaky", "flaky", "failed", "3", "4.5 ms", "upstream &lt;down&gt;"],
                     ["3", "after", "emit", "skipped", "0", "-", ""]]
    assert "<dt>Runs</dt><dd>2</dd>" in html and "<dt>Current step</dt><dd>flaky</dd>" in html


def test_an_unknown_execution_is_a_404(client):
    assert client.get(f"/ui/executions/{uuid.uuid4()}").status_code == 404
    assert client.get("/ui/executions/not-a-uuid").status_code == 404


def test_an_unknown_page_is_a_404_page_not_json(client):
    """A mistyped address under /ui/ gets a page that says so and links
    back, as a browser expects; the API's unknown URLs stay problem+json."""
    for path in ("/ui/executions/not-a-uuid", "/ui/nope", "/ui/executions/a/b/c", "/ui/static/nope.js"):
        response = client.get(path)
        assert (response.status_code, response.mimetype) == (404, "text/html"), path
        assert 'href="/ui/"' in response.get_data(as_text=True), path
    api = client.get("/api/v1/nope")
    assert (api.status_code, api.mimetype) == (404, "application/problem+json")


def test_the_static_files_are_served_from_the_package(client):
    for name, kind in (("execution.js", "javascript"), ("ui.css", "text/css")):
        response = client.get(f"/ui/static/{name}")
        assert response.status_code == 200 and kind in response.mimetype
        response.close()


def test_the_list_and_the_summary_show_the_log_verdict(client, rows):
    done = rows.execution(workflow="synthetic-emit", status="succeeded", attempts=1)
    rows.logs(done, 5, attempt=1)
    rows.log_count(done, 1, emitted=5)
    lossy = rows.execution(workflow="synthetic-emit", status="failed", attempts=1)
    rows.logs(lossy, 3, attempt=1)
    rows.log_count(lossy, 1, emitted=5, dropped=2)

    html = client.get("/ui/?workflow=synthetic-emit").get_data(as_text=True)
    starts = {key: html.index(f'data-execution-id="{key}"') for key in (done, lossy)}
    row = {key: html[start:html.index("</tr>", start)] for key, start in starts.items()}
    assert re.search(r'data-state="complete"[^>]*>complete: all 5 records stored<', row[done])
    assert re.search(r'data-state="incomplete"[^>]*>incomplete: 2 records lost for good<', row[lossy])
    summary = client.get(f"/ui/executions/{lossy}/summary").get_data(as_text=True)
    assert 'data-state="incomplete" data-complete="false"' in summary and 'data-settled="true"' in summary
    assert "2 dropped by the process that ran it" in summary


def test_a_log_pruned_by_retention_says_so(client, rows):
    old = rows.execution(workflow="synthetic-emit", status="succeeded", attempts=1,
                         created_at=seconds_ago(40 * 86400))  # past the default 30 days
    rows.logs(old, 2, attempt=1)
    rows.log_count(old, 1, emitted=6)

    html = client.get("/ui/?workflow=synthetic-emit").get_data(as_text=True)
    start = html.index(f'data-execution-id="{old}"')
    assert re.search(r'data-state="pruned"[^>]*>pruned: 2 of 6 kept, the older ones removed by retention<',
                     html[start:html.index("</tr>", start)])
    summary = client.get(f"/ui/executions/{old}/summary").get_data(as_text=True)
    assert 'data-state="pruned" data-complete="false"' in summary and 'data-settled="true"' in summary
