"""Fixtures of the browser tests: the app under the project's gunicorn
config (on the session's PostgreSQL, Redis and Celery worker) and Debian's
chromium, driven through its chromedriver by Selenium.

``make test`` installs chromium and chromium-driver (scripts/ensure_browser.sh).
The browser starts headless with a fresh profile and no background
networking: it talks to the test server only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from ..api.conftest import rows  # noqa: F401 - executions and records written straight into the table
from ..conftest import service_env
from ..support.processes import BIN, ManagedProcess, free_port, wait_for_port
from ..support.waiting import wait_for_execution

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")
#: Event-stream settings that keep the tests short.
FAST_STREAM = {"API_SSE_POLL_INTERVAL": "0.2", "API_SSE_HEARTBEAT": "1", "API_SSE_LOG_DELAY": "3"}


@dataclass
class Server:
    """The app served by gunicorn on a port of its own."""

    process: ManagedProcess
    port: int
    token: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        with urlopen(Request(self.base + path, data=data, method=method, headers=headers), timeout=30) as r:
            return json.loads(r.read())

    def start(self, workflow: str, **workflow_input: Any) -> str:
        return self.api("POST", "/api/v1/executions", {"workflow": workflow, "input": workflow_input})["id"]

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v1/executions/{execution_id}")

    def log_ids(self, execution_id: str) -> list[str]:
        """Every stored record id of the execution, in order (all pages)."""
        ids: list[str] = []
        after = ""
        while True:
            page = self.api("GET", f"/api/v1/executions/{execution_id}/logs?limit=1000{after}")
            ids += [item["id"] for item in page["items"]]
            if page["next"] is None:
                return ids
            after = f"&after={page['next']}"

    def wait_until_finished(self, execution_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return wait_for_execution(lambda: self.execution(execution_id), execution_id, timeout=timeout)


@pytest.fixture
def serve(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start gunicorn (two workers) with extra settings; stopped after the test."""
    started: list[Server] = []

    def start(token: str | None = None, **settings: str) -> Server:
        port = free_port()
        extra = {"WEB_CONCURRENCY": "2", **FAST_STREAM, **settings}
        if token:
            extra["API_TOKENS"] = token
        env = service_env(database_url, redis_url, tmp_path / f"web{len(started)}",
                          GUNICORN_BIND=f"127.0.0.1:{port}",
                          DB_APPLICATION_NAME=f"ui-{uuid.uuid4().hex[:8]}", **extra)
        process = ManagedProcess("gunicorn", [str(BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py",
                                              "wsgi:app"], env, tmp_path / f"gunicorn{len(started)}.log")
        server = Server(process.start(), port, token)
        started.append(server)
        wait_for_port(port, timeout=60)
        process.wait_for_output("Booting worker", timeout=60)
        return server

    yield start
    for server in started:
        server.process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless chromium with a fresh profile; downloads go to tmp_path/downloads."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for console_errors()
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def page_log_ids(driver: webdriver.Chrome) -> list[str]:
    """The ids of the record elements on the page, in page order."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-log-id]')).map(e => e.dataset.logId)")


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """What the page wrote to the console as errors since the last call
    (a Content-Security-Policy refusal is one)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def log_view(driver: webdriver.Chrome) -> dict[str, Any]:
    """What the page's script counted: received, duplicates, opened, ended."""
    return driver.execute_script(  # before the page's script ran (a page still loading): nothing yet
        "const v = window.logView || {received: 0, duplicates: 0, opened: 0, ended: false, following: false};"
        "return {received: v.received, duplicates: v.duplicates, "
        "opened: v.opened, ended: v.ended, following: v.following}")


def visible_log_ids(driver: webdriver.Chrome) -> list[str]:
    return [e.get_attribute("data-log-id") for e in driver.find_elements(By.CSS_SELECTOR, "[data-log-id]")
            if e.is_displayed()]


def text_on_page(driver: webdriver.Chrome, element_id: str) -> str | None:
    """An element's text, read in one script (None while it is not there):
    the page replaces the summary after each progress event, so an element
    found in one call can be gone by the next."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent.trim() : null;",
        element_id)


def verdict_on_page(driver: webdriver.Chrome) -> dict[str, str]:
    """The verdict's data attributes and text, read in one script: the page
    replaces the summary after each progress event, so an element found in
    one call can be gone by the next."""
    return driver.execute_script(
        "const v = document.getElementById('verdict');"
        "return {...v.dataset, text: v.textContent.trim()};")
