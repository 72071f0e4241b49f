"""The pages in token mode, in a real browser: a token asked once, a
session cookie that is HttpOnly and SameSite, the log streamed on that
session, and retry from the page with its CSRF token. And the OpenAPI page
renders with nothing from elsewhere."""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.common.by import By

from ..support.waiting import wait_for
from .conftest import log_view, page_log_ids, text_on_page, verdict_on_page

TOKEN = "ui-" + uuid.uuid4().hex


@pytest.mark.usefixtures("celery_worker")
def test_token_mode_signs_in_once_and_retries_from_the_page(serve, browser):
    server = serve(token=TOKEN)
    execution_id = server.start("flaky", always=True, failure="invalid_input")
    server.wait_until_finished(execution_id)

    browser.get(f"{server.base}/ui/executions/{execution_id}")
    assert browser.current_url == f"{server.base}/ui/login?next=/ui/executions/{execution_id}"
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()

    wait_for(lambda: browser.current_url == f"{server.base}/ui/executions/{execution_id}", timeout=30,
             message="the execution page after signing in")
    wait_for(lambda: log_view(browser)["ended"], timeout=30, message="the whole log of the failed execution")
    assert sorted(page_log_ids(browser)) == sorted(server.log_ids(execution_id)), "streamed on the session"
    cookie = browser.get_cookie("webapp_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert TOKEN not in cookie["value"]
    assert browser.execute_script("return document.cookie") == "", "scripts cannot read the session"

    wait_for(lambda: verdict_on_page(browser)["settled"] == "true",
             timeout=30, message="the first run's verdict to settle")
    browser.find_element(By.ID, "retry").click()
    wait_for(lambda: server.execution(execution_id)["attempts"] == 2, timeout=30, message="a second run")
    wait_for(lambda: log_view(browser)["opened"] == 2 and log_view(browser)["ended"], timeout=60,
             message="the page to follow the second run to its end")
    assert sorted(page_log_ids(browser)) == sorted(server.log_ids(execution_id))
    wait_for(lambda: text_on_page(browser, "execution-status") == "failed", timeout=30,
             message="the page to show the second run failed")


def test_the_openapi_page_renders_from_the_package(serve, browser):
    server = serve()
    browser.get(f"{server.base}/api/v1/docs")
    wait_for(lambda: "Start workflows, follow them live" in browser.find_element(By.TAG_NAME, "body").text,
             timeout=30, message="Redoc to render the document")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(server.base) for url in loaded), loaded


def test_a_page_whose_session_ended_goes_to_the_sign_in_page(serve, browser, rows):
    server = serve(token=TOKEN)
    execution_id = rows.execution(workflow="synthetic-emit", status="running")
    browser.get(f"{server.base}/ui/login?next=/ui/executions/{execution_id}")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.current_url == f"{server.base}/ui/executions/{execution_id}", timeout=30,
             message="the execution page after signing in")
    wait_for(lambda: log_view(browser)["opened"] == 1, timeout=30, message="the event stream")

    browser.delete_cookie("webapp_session")
    rows.event(execution_id, "step_started", {"step": "emit", "position": 0, "attempt": 1})

    wait_for(lambda: browser.current_url.startswith(f"{server.base}/ui/login?next="), timeout=30,
             message="the sign-in page")
