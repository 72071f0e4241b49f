"""Fixes of an audit of the pages and the downloads: sign-in goes only to a
page under /ui/; a session without `start` is not offered a retry; the pages
refuse parameters they do not know; the verdict's words agree with their
numbers; a logs.txt record is one line for any reader."""

from __future__ import annotations

import re
import uuid

import pytest

from webapp.ui.views import _safe_next

from .test_session import csrf_of

READER = "reader-" + uuid.uuid4().hex
STARTER = "starter-" + uuid.uuid4().hex


@pytest.fixture
def token_app(app_factory):
    return app_factory(API_AUTH="token", API_TOKENS=[f"{READER}:read", f"{STARTER}:read+start"])


def sign_in(client, token: str, next_page: str):
    form = client.get("/ui/login").get_data(as_text=True)
    return client.post("/ui/login", data={"token": token, "csrf_token": csrf_of(form), "next": next_page})


# -- 1. sign-in goes to a page under /ui/, as a browser resolves it ------------------------------

OUTSIDE = [
    "/ui/../api/v1/tokens", "/ui/%2e%2e/api/v1/tokens", "/ui/%2E%2E/api/v1/tokens", "/ui/.%2e/api",
    "/ui/%252e%252e/api", "/ui/./", "/ui/executions/..", "/ui/a/../../api", "/ui/%2e", "/ui/..?x=1",
    "/ui/\\..\\api", "/ui/x\\y", "/ui/%5c", "/ui/\t/x", "/ui/ x", "/ui/x\ny", "/ui/\x00", "/ui/\x7f",
    "/ui/\u2028", "/ui/\u00a0", "/ui//elsewhere.example", "/ui/%2felsewhere.example",
    "https://elsewhere.example/ui/", "//elsewhere.example/ui/", "http:/ui/", "javascript:/ui/",
    "/api/v1/runners", "ui/", "", "/ui", " /ui/", "/ui/%0a", "/ui/%00",
]


@pytest.mark.parametrize("target", OUTSIDE)
def test_sign_in_refuses_what_a_browser_resolves_outside_the_pages(app, target):
    with app.test_request_context("/ui/login"):
        assert _safe_next(target) == "/ui/", repr(target)


@pytest.mark.parametrize("target", [
    "/ui/", "/ui/executions/0c6a8c0e-7bd4-4b35-9d1f-0c1c8b1f3e55?level=info&q=a%20b",
    "/ui/?status=failed&workflow=roadmap", "/ui/executions/x...y", "/ui/..x/", "/ui/#top",
])
def test_sign_in_still_goes_to_any_page_of_ours(app, target):
    with app.test_request_context("/ui/login"):
        assert _safe_next(target) == target


def test_signing_in_with_a_dotted_next_goes_to_the_list(token_app):
    client = token_app.test_client()
    form = client.get("/ui/login?next=/ui/../api/v1/tokens").get_data(as_text=True)
    assert 'name="next" value="/ui/"' in form
    for target in ("/ui/../api/v1/tokens", "/ui/%2e%2e/api/v1/tokens"):
        answer = sign_in(token_app.test_client(), READER, target)
        assert answer.status_code == 302 and answer.headers["Location"] == "/ui/", target


# -- 2. retry is offered only to a session that may start ----------------------------------------

@pytest.mark.parametrize("token, offered", [(READER, False), (STARTER, True)])
def test_retry_is_offered_only_with_the_start_scope(token_app, rows, token, offered):
    failed = rows.execution(workflow="roadmap", status="failed")
    client = token_app.test_client()
    assert sign_in(client, token, "/ui/").status_code == 302
    for path in (f"/ui/executions/{failed}", f"/ui/executions/{failed}/summary"):
        html = client.get(path).get_data(as_text=True)
        assert ('id="retry"' in html) is offered, path
        assert ("Retry from the failed step" in html) is offered, path


def test_open_mode_offers_retry(client, rows):
    failed = rows.execution(workflow="roadmap", status="failed")
    assert 'id="retry"' in client.get(f"/ui/executions/{failed}").get_data(as_text=True)


# -- 3. the pages refuse parameters they do not know, or given twice -----------------------------

@pytest.mark.parametrize("query, fragment", [
    ("?stauts=failed", "stauts: Unknown parameter."),
    ("?limit=5", "limit: Unknown parameter."),
    ("?status=failed&status=succeeded", "status: Given more than once."),
    ("?workflow=roadmap&workflow=", "workflow: Given more than once."),
    ("?foo=", "foo: Unknown parameter."),
])
def test_the_list_refuses_unknown_and_repeated_parameters(client, rows, query, fragment):
    rows.execution(workflow="roadmap", status="failed")
    response = client.get(f"/ui/{query}")
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert fragment in html and "<tr data-execution-id=" not in html


def test_the_list_still_takes_its_filters_and_empty_ones(client, rows):
    failed = rows.execution(workflow="roadmap", status="failed")
    response = client.get("/ui/?status=failed&workflow=")
    assert response.status_code == 200 and failed in response.get_data(as_text=True)


@pytest.mark.parametrize("query, fragment", [
    ("?level=loud", "level: Must be one of"),
    ("?level=INFO", "level: Must be one of"),
    ("?level=info&level=error", "level: Given more than once."),
    ("?q=a&q=b", "q: Given more than once."),
    ("?q=" + "x" * 201, "q: "),
    ("?lvl=info", "lvl: Unknown parameter."),
])
def test_the_execution_page_checks_its_parameters(client, rows, query, fragment):
    execution_id = rows.execution(status="queued")
    response = client.get(f"/ui/executions/{execution_id}{query}")
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert fragment in html and f'href="/ui/executions/{execution_id}"' in html
    assert "data-events-url" not in html


def test_the_execution_page_takes_its_filters(client, rows):
    execution_id = rows.execution(status="queued")
    for query in ("", "?level=error", "?q=catalog", "?level=warning&q=x%20y", "?q="):
        assert client.get(f"/ui/executions/{execution_id}{query}").status_code == 200, query
    html = client.get(f"/ui/executions/{execution_id}?level=error").get_data(as_text=True)
    assert '<option value="error" selected>' in html


# -- 4. the verdict's words agree with their numbers ---------------------------------------------

def test_one_record_lost_is_one_record(client, rows):
    lossy = rows.execution(workflow="synthetic-emit", status="failed", attempts=1)
    rows.logs(lossy, 3, attempt=1)
    rows.log_count(lossy, 1, emitted=4, dropped=1)

    logs = client.get(f"/api/v1/executions/{lossy}").json["logs"]
    assert logs["reason"].startswith("attempt 1: record lost for good: 1 dropped by the process")
    html = client.get("/ui/?workflow=synthetic-emit").get_data(as_text=True)
    start = html.index(f'data-execution-id="{lossy}"')
    row = html[start:html.index("</tr>", start)]
    assert re.search(r'data-state="incomplete"[^>]*>incomplete: 1 record lost for good<', row)
    assert "1 records" not in html


def test_the_reasons_say_record_for_one(client, rows):
    waiting = rows.execution(workflow="synthetic-emit", status="succeeded", attempts=1)
    rows.log_count(waiting, 1, emitted=1)
    assert (client.get(f"/api/v1/executions/{waiting}").json["logs"]["reason"]
            == "attempt 1: 1 of 1 record not stored yet")

    lost_worker = rows.execution(workflow="synthetic-emit", status="failed", attempts=1)
    rows.logs(lost_worker, 1, attempt=1)
    assert client.get(f"/api/v1/executions/{lost_worker}").json["logs"]["reason"].endswith(
        "; 1 record of it is stored")

    done = rows.execution(workflow="synthetic-emit", status="succeeded", attempts=1)
    rows.logs(done, 1, attempt=1)
    rows.log_count(done, 1, emitted=1)
    summary = client.get(f"/ui/executions/{done}/summary").get_data(as_text=True)
    assert "Log complete: 1 record stored" in summary


def test_a_pending_execution_has_emitted_0_as_the_api_doc_says(client, execution_id):
    logs = client.get(f"/api/v1/executions/{execution_id}").json["logs"]
    assert (logs["state"], logs["emitted"]) == ("pending", 0)


# -- 5. a logs.txt record is one line for any reader ---------------------------------------------

BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def test_every_line_break_of_a_message_is_escaped_in_logs_txt(client, rows, execution_id):
    assert all(len(f"a{char}b".splitlines()) == 2 for char in BREAKS)
    rows.log(execution_id, f"first{BREAKS}end")
    rows.log(execution_id, "second\r\nrecord")

    body = client.get(f"/api/v1/executions/{execution_id}/logs.txt").get_data(as_text=True)

    lines = body.splitlines()
    assert len(lines) == 2 and body.endswith("\n")
    assert lines[0].endswith("first\\n\\r\\v\\f\\x1c\\x1d\\x1e\\x85\\u2028\\u2029end")
    assert lines[1].endswith("second\\r\\nrecord")


# -- a page of an execution that does not exist ------------------------------------------------

@pytest.mark.parametrize("page", ["/ui/executions/{id}", "/ui/executions/{id}/summary"])
def test_a_page_of_an_execution_that_does_not_exist_is_an_html_404(client, page):
    missing = uuid.uuid4()
    response = client.get(page.format(id=missing))
    assert response.status_code == 404 and response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert f"no execution {missing}" in text and 'href="/ui/"' in text
