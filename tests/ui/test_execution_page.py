"""The execution page in a real browser: the log grows live, the page
resumes after the server drops the stream, filters hide records, download
returns every record."""

from __future__ import annotations

import json
import os
import signal
from urllib.request import urlopen

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from ..support.processes import children
from ..support.waiting import wait_for
from .conftest import console_errors, log_view, page_log_ids, text_on_page, verdict_on_page, visible_log_ids

pytestmark = pytest.mark.usefixtures("celery_worker")


def open_execution(browser, server, execution_id: str) -> None:
    browser.get(f"{server.base}/ui/executions/{execution_id}")
    wait_for(lambda: log_view(browser)["opened"] >= 1, timeout=30, message="the event stream to open")


def test_a_running_execution_log_grows_on_the_page(serve, browser):
    server = serve()
    execution_id = server.start("synthetic-emit", records=60, rate=10)
    open_execution(browser, server, execution_id)

    first = wait_for(lambda: len(page_log_ids(browser)), timeout=30, message="a first record on the page")
    assert server.execution(execution_id)["status"] == "running"
    wait_for(lambda: len(page_log_ids(browser)) > first
             and server.execution(execution_id)["status"] == "running",
             timeout=30, message="more records while the execution runs")

    server.wait_until_finished(execution_id)
    wait_for(lambda: log_view(browser)["ended"], timeout=30, message="the stream to end")
    assert sorted(page_log_ids(browser)) == sorted(server.log_ids(execution_id))
    # The summary is fetched again after the final event: it may still be on its way.
    wait_for(lambda: text_on_page(browser, "execution-status") == "succeeded", timeout=30,
             message="the page to show the execution succeeded")
    assert text_on_page(browser, "stream-state") == "ended"


def test_after_the_server_drops_the_stream_the_page_resumes_with_nothing_missing_or_twice(serve, browser):
    server = serve()
    execution_id = server.start("synthetic-emit", records=80, rate=10)
    open_execution(browser, server, execution_id)
    wait_for(lambda: len(page_log_ids(browser)) >= 5, timeout=30, message="records on the page")

    for worker in children(server.process.pid):  # every gunicorn worker, the stream's among them
        os.kill(worker, signal.SIGKILL)
    wait_for(lambda: log_view(browser)["opened"] >= 2, timeout=30, message="the page to reconnect")
    assert server.execution(execution_id)["status"] == "running", "resumed while it still runs"

    server.wait_until_finished(execution_id)
    wait_for(lambda: log_view(browser)["ended"], timeout=30, message="the stream to end")
    on_page = page_log_ids(browser)
    stored = server.log_ids(execution_id)
    assert len(stored) == 80 + 4  # the records, the step's and the workflow's start and end
    assert sorted(on_page) == sorted(stored), "nothing missing"
    assert len(set(on_page)) == len(on_page) and log_view(browser)["duplicates"] == 0, "nothing twice"
    assert on_page == stored, "in the stored order"


def test_the_level_and_text_filters_hide_records_and_carry_to_the_downloads(serve, browser, rows):
    server = serve()
    execution_id = rows.execution(workflow="synthetic-emit", status="succeeded")
    debug_ids = [rows.log(execution_id, f"tool call {i}", level="debug") for i in range(3)]
    info_ids = [rows.log(execution_id, f"catalog entry {i}") for i in range(2)]
    error_id = rows.log(execution_id, "it broke", level="error")
    rows.event(execution_id, "execution_succeeded")
    open_execution(browser, server, execution_id)
    wait_for(lambda: len(page_log_ids(browser)) == 6, timeout=30, message="the six records")
    assert set(visible_log_ids(browser)) == {*debug_ids, *info_ids, error_id}

    Select(browser.find_element(By.ID, "filter-level")).select_by_value("info")
    assert visible_log_ids(browser) == [*info_ids, error_id], "debug records are hidden"
    browser.find_element(By.ID, "filter-text").send_keys("CATALOG")
    assert visible_log_ids(browser) == info_ids
    link = browser.find_element(By.ID, "download-ndjson").get_attribute("href")
    assert link.endswith(f"/api/v1/executions/{execution_id}/logs.ndjson?level=info&q=CATALOG")
    assert browser.current_url.endswith("?level=info&q=CATALOG"), "the filters are in the page's address"

    browser.refresh()
    wait_for(lambda: len(page_log_ids(browser)) == 6, timeout=30, message="the records after a reload")
    assert visible_log_ids(browser) == info_ids, "a reload keeps the filters"


def test_a_record_details_expand(serve, browser, rows):
    server = serve()
    execution_id = rows.execution(workflow="synthetic-emit", status="running")
    rows.log(execution_id, "no details")
    open_execution(browser, server, execution_id)
    server.api("POST", "/api/v1/logs", {"records": [{
        "trace_id": execution_id, "level": "info", "category": "api", "message": "with details",
        "details": {"hits": 12, "query": "<b>python</b>"}}]})
    item = wait_for(lambda: next(iter(browser.find_elements(By.CSS_SELECTOR, "li.record details")), None),
                    timeout=30, message="the record with details")
    body = item.find_element(By.TAG_NAME, "pre")
    assert not body.is_displayed()
    item.find_element(By.TAG_NAME, "summary").click()
    assert json.loads(body.text) == {"hits": 12, "query": "<b>python</b>"}, "shown as text, never as HTML"


def test_jump_to_latest_brings_the_newest_record_into_view(serve, browser, rows):
    server = serve()
    execution_id = rows.execution(workflow="synthetic-emit", status="running")
    ids = rows.logs(execution_id, 300)
    open_execution(browser, server, execution_id)
    wait_for(lambda: len(page_log_ids(browser)) == 300, timeout=30, message="300 records")
    assert in_view(browser, ids[-1]), "the page follows the newest record"

    browser.execute_script("document.getElementById('log').scrollTop = 0")
    jump = browser.find_element(By.ID, "jump-latest")
    wait_for(jump.is_displayed, timeout=10, message="the jump button")
    assert not in_view(browser, ids[-1])
    newest = rows.log(execution_id, "logged while the reader looked back")
    wait_for(lambda: newest in page_log_ids(browser), timeout=30, message="the new record")
    assert not in_view(browser, newest), "a reader who scrolled back is not pulled down"

    jump.click()
    assert in_view(browser, newest)
    wait_for(lambda: not jump.is_displayed(), timeout=10, message="the jump button to go")


def in_view(browser, log_id: str) -> bool:
    return browser.execute_script("""
        const log = document.getElementById('log').getBoundingClientRect();
        const item = document.querySelector(`[data-log-id="${arguments[0]}"]`).getBoundingClientRect();
        return item.top >= log.top && item.bottom <= log.bottom + 1;""", log_id)


def test_download_returns_every_record(serve, browser, rows, tmp_path):
    server = serve()
    execution_id = rows.execution(workflow="synthetic-emit", status="succeeded")
    ids = rows.logs(execution_id, 2500)
    rows.event(execution_id, "execution_succeeded")
    open_execution(browser, server, execution_id)

    browser.find_element(By.ID, "download-ndjson").click()
    saved = tmp_path / "downloads" / f"execution-{execution_id}.ndjson"
    wait_for(saved.exists, timeout=30, message="the download")
    records = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [record["id"] for record in records] == ids
    assert records[0]["message"] == "record 0" and records[-1]["message"] == "record 2499"


def test_the_verdict_turns_complete(serve, browser):
    server = serve()
    execution_id = server.start("synthetic-emit", records=60, rate=10)
    open_execution(browser, server, execution_id)
    wait_for(lambda: server.execution(execution_id)["status"] == "running" and len(page_log_ids(browser)),
             timeout=30, message="the execution running, and on the page")
    browser.refresh()  # the verdict as the page renders it while the run goes on
    verdict = verdict_on_page(browser)
    assert (verdict["state"], verdict["complete"]) == ("running", "false")
    assert "running:" in verdict["text"]

    server.wait_until_finished(execution_id)
    wait_for(lambda: verdict_on_page(browser)["complete"] == "true", timeout=60,
             message="the verdict to turn complete")
    assert verdict_on_page(browser)["text"].startswith("Log complete: all 64 records stored")
    assert server.execution(execution_id)["logs"]["complete"] is True


def test_records_are_grouped_by_attempt(serve, browser):
    server = serve()
    execution_id = server.start("flaky", always=True, failure="bug")
    server.wait_until_finished(execution_id)
    server.api("POST", f"/api/v1/executions/{execution_id}/retry")
    wait_for(lambda: server.execution(execution_id)["attempts"] == 2, timeout=30, message="a second run")
    server.wait_until_finished(execution_id)
    listing = f"/api/v1/executions/{execution_id}/logs?limit=1000"
    stored = wait_for(lambda: (lambda items: items if None in {r["attempt"] for r in items} else None)(
        server.api("GET", listing)["items"]), timeout=30, message="the resume request's record")
    open_execution(browser, server, execution_id)
    wait_for(lambda: log_view(browser)["ended"], timeout=30, message="the whole log")

    groups = browser.execute_script("""
        return Array.from(document.querySelectorAll('#log section.attempt')).map(s => [
            s.dataset.attempt, s.querySelector('h3').textContent,
            Array.from(s.querySelectorAll('[data-log-id]')).map(e => e.dataset.logId)]);""")
    assert [(key, title) for key, title, _ in groups] == [
        ("1", "Attempt 1"), ("2", "Attempt 2"), ("", "Without an attempt (POST /logs, web requests)")]
    expected = {key: [r["id"] for r in stored if ("" if r["attempt"] is None else str(r["attempt"])) == key]
                for key, _, _ in groups}
    assert {key: ids for key, _, ids in groups} == expected


def test_a_page_whose_stream_was_refused_opens_it_again_where_it_was(serve, browser, rows):
    """At its stream cap the server refuses the page's EventSource (503),
    which then gives up for good; the page opens a new one after a while,
    resuming where it was, and shows every record once."""
    server = serve(WEB_CONCURRENCY="1", API_SSE_MAX_STREAMS="1")
    execution_id = rows.execution(workflow="synthetic-emit", status="running")
    first = [rows.log(execution_id, f"before {i}") for i in range(3)]
    held = urlopen(f"{server.base}/api/v1/executions/{execution_id}/events", timeout=30)
    held.readline()  # the one stream this process serves is open

    browser.get(f"{server.base}/ui/executions/{execution_id}")
    wait_for(lambda: browser.find_element(By.ID, "stream-state").get_attribute("data-state") == "refused",
             timeout=30, message="the page to be refused")
    assert log_view(browser)["opened"] == 0
    held.close()  # the server notices at the stream's next heartbeat, and frees its slot

    wait_for(lambda: log_view(browser)["opened"] == 1, timeout=60, message="the page to open a stream again")
    wait_for(lambda: sorted(page_log_ids(browser)) == sorted(first), timeout=30, message="the first records")
    later = [rows.log(execution_id, f"after {i}") for i in range(3)]
    rows.event(execution_id, "execution_succeeded", {"duration_ms": 1.0})
    wait_for(lambda: log_view(browser)["ended"], timeout=30, message="the stream to end")
    assert page_log_ids(browser) == first + later
    assert log_view(browser)["duplicates"] == 0


def test_the_page_breaks_no_rule_of_its_own_content_security_policy(serve, browser, rows):
    server = serve()
    execution_id = rows.execution(workflow="synthetic-emit", status="succeeded")
    rows.log(execution_id, "one record")
    open_execution(browser, server, execution_id)
    browser.execute_script("window.notReloaded = true")
    browser.find_element(By.ID, "filter-text").send_keys("one\n")  # Enter filters; it does not reload
    wait_for(lambda: "q=one" in browser.current_url, timeout=10, message="the filter in the address")
    assert browser.execute_script("return window.notReloaded") is True
    assert console_errors(browser) == []


def test_a_record_that_lands_after_the_stream_ended_is_added_from_the_stored_log(serve, browser, rows):
    """The stream sends what lands within API_SSE_LOG_DELAY; one replayed
    later (a broker outage) is in the stored log only. While the verdict
    says records are on their way, the page reads the stored log too."""
    server = serve()
    execution_id = rows.execution(workflow="synthetic-emit", status="running", attempts=1)
    first = [rows.log(execution_id, f"on time {i}", attempt=1) for i in range(3)]
    open_execution(browser, server, execution_id)
    wait_for(lambda: sorted(page_log_ids(browser)) == sorted(first), timeout=30, message="the records")
    rows.log_count(execution_id, 1, emitted=4)
    with rows.engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE executions SET status = 'succeeded', finished_at = now() "
                                   f"WHERE id = '{execution_id}'")
    rows.event(execution_id, "execution_succeeded", {"duration_ms": 1.0})
    wait_for(lambda: log_view(browser)["ended"], timeout=30, message="the stream to end")
    # The summary is fetched again after the final event: it may still be on its way.
    wait_for(lambda: verdict_on_page(browser)["state"] == "in_flight", timeout=30,
             message="the verdict: a record on its way")

    late = rows.log(execution_id, "replayed late", attempt=1, ago=600)  # long before the stream's window
    wait_for(lambda: late in page_log_ids(browser), timeout=30, message="the late record on the page")
    assert page_log_ids(browser) == [late, *first], "in its place, by created_at"
    wait_for(lambda: verdict_on_page(browser)["state"] == "complete", timeout=30, message="a complete log")
    assert log_view(browser)["duplicates"] == 0
