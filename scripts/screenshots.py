"""Screenshots of the pages for the docs (docs/screenshots/*.png).

Run against a server that is up (``make run``): it starts a roadmap, a
synthetic-emit and a flaky execution that fails, waits for them, and takes
the list and the roadmap's page with Debian's headless chromium.

    .venv/bin/python scripts/screenshots.py http://127.0.0.1:8000 [--token T]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from urllib.request import Request, urlopen

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1400",
         "--hide-scrollbars")


def api(base: str, token: str | None, method: str, path: str, body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = None if body is None else json.dumps(body).encode()
    with urlopen(Request(base + path, data=data, method=method, headers=headers), timeout=30) as response:
        return json.loads(response.read())


def finished(base: str, token: str | None, execution_id: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while api(base, token, "GET", f"/api/v1/executions/{execution_id}")["status"] not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise SystemExit(f"execution {execution_id} did not finish in {timeout} s")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("--token")
    args = parser.parse_args()
    base, token = args.base.rstrip("/"), args.token
    start = lambda workflow, data: api(base, token, "POST", "/api/v1/executions",  # noqa: E731
                                       {"workflow": workflow, "input": data})["id"]
    flaky = start("flaky", {"always": True, "failure": "transient"})
    start("synthetic-emit", {"records": 20})
    roadmap = start("roadmap", {"goal": "I am new to Python, 1 hour a day, ready in 4 months"})
    for execution_id in (flaky, roadmap):
        finished(base, token, execution_id)

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
        try:
            if token:
                driver.get(f"{base}/ui/login")
                driver.find_element(By.ID, "token").send_keys(token)
                driver.find_element(By.ID, "sign-in").click()
            OUT.mkdir(parents=True, exist_ok=True)
            driver.get(f"{base}/ui/")
            driver.save_screenshot(str(OUT / "executions.png"))
            driver.get(f"{base}/ui/executions/{roadmap}")
            deadline = time.monotonic() + 60
            while not driver.execute_script("return window.logView && window.logView.ended") or \
                    driver.find_elements(By.CSS_SELECTOR, ".verdict[data-settled='false']"):
                if time.monotonic() > deadline:
                    raise SystemExit("the page did not settle in 60 s")
                time.sleep(0.5)
            # One record's details open, the log at its newest, the page at its top.
            driver.execute_script("""
                const all = document.querySelectorAll('li.record details');
                all[all.length - 1].open = true;
                document.getElementById('jump-latest').click();
                window.scrollTo(0, 0);""")
            driver.save_screenshot(str(OUT / "execution.png"))
        finally:
            driver.quit()
    print(f"wrote {OUT / 'executions.png'} and {OUT / 'execution.png'}")


if __name__ == "__main__":
    main()
