"""scripts/start_flower.sh and scripts/start_celery_beat.sh as real processes
(scripts/start_celery_worker.sh runs in test_scaling.py)."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ..conftest import service_env
from ..support.processes import ROOT, ManagedProcess, free_port, wait_for_port

SCRIPTS = ROOT / "scripts"


def script_env(tmp_path: Path, broker: str, **extra: str) -> dict[str, str]:
    return service_env("", broker, tmp_path / "var", PYTHON=sys.executable, **extra)


def get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(
    "python, auth, message",
    [
        ("/usr/bin/python3", "ops:secret", "Flower is not installed for /usr/bin/python3; "
                                           "install the monitoring extra: pip install '.[monitoring]'"),
        (sys.executable, "", "set FLOWER_BASIC_AUTH=user:password"),
    ],
)
def test_flower_refuses_to_start_without_flower_or_a_password(tmp_path, spare_broker, python, auth, message):
    env = script_env(tmp_path, spare_broker, FLOWER_BASIC_AUTH=auth)
    env["PYTHON"] = python
    result = subprocess.run([str(SCRIPTS / "start_flower.sh")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stderr.strip()) == (1, f"start_flower.sh: {message}")


def test_flower_serves_behind_basic_auth_with_an_open_health_check(tmp_path, spare_broker):
    port = free_port()
    env = script_env(tmp_path, spare_broker, FLOWER_BASIC_AUTH="ops:secret", FLOWER_PORT=str(port))
    flower = ManagedProcess("flower", [str(SCRIPTS / "start_flower.sh")], env, tmp_path / "flower.log")
    flower.start()
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        answers = [get(f"{base}/"), get(f"{base}/", "ops:wrong"), get(f"{base}/", "ops:secret")]
        assert answers == [401, 401, 200]
        assert get(f"{base}/healthcheck") == 200
        with open(f"/proc/{flower.pid}/cmdline", "rb") as cmdline:
            assert b"secret" not in cmdline.read()
    finally:
        assert flower.stop() == 0, flower.output()[-3000:]


def test_beat_loads_the_retention_and_stalled_execution_schedules(tmp_path, spare_broker):
    env = script_env(tmp_path, spare_broker, CELERY_LOGLEVEL="debug")
    beat = ManagedProcess("beat", [str(SCRIPTS / "start_celery_beat.sh")], env, tmp_path / "beat.log")
    beat.start()
    try:
        beat.wait_for_output("beat: Waking up in", timeout=60)
        schedule = beat.output().split("Current schedule:", 1)[1].split("[", 1)[0]
        assert sorted(schedule.strip().splitlines()) == [
            "<ScheduleEntry: execlog-retention execlog.maintain_partitions() "
            "<crontab: 7 * * * * (m/h/dM/MY/d)>",
            "<ScheduleEntry: workflow-fail-stalled workflow.fail_stalled() <freq: 1.00 minute>",
        ]
        assert list((tmp_path / "var").glob("celerybeat-schedule*"))
    finally:
        assert beat.stop() == 0, beat.output()[-3000:]
