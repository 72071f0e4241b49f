"""``make run`` on a machine with nothing installed: SQLite and kombu's
file-system transport under var/, gunicorn and a Celery worker together."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

from webapp import create_app
from webapp.config import config_from_env

from ..support.processes import BIN, ROOT, ManagedProcess, free_port, wait_for_port
from ..support.waiting import wait_for


def embedded_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXECLOG_", "CELERY_", "DATABASE_URL", "REDIS_URL", "GUNICORN_"))
    }
    env.update(WEBAPP_VAR_DIR=str(var_dir), GUNICORN_BIND=f"127.0.0.1:{port}",
               VENV=str(Path(sys.executable).parent.parent), PYTHONUNBUFFERED="1")
    return env


def test_run_serves_and_stores_logs_with_no_server_installed(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    env = embedded_env(var_dir, port)
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    service = ManagedProcess("make-run", [str(ROOT / "scripts" / "run.sh")], env, tmp_path / "run.log")
    service.start()
    try:
        wait_for_port(port, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert json.load(response) == {"status": "ok"}
        service.wait_for_output(" ready.", timeout=60)

        producer = create_app(config_from_env({"WEBAPP_VAR_DIR": str(var_dir)}))
        logger = producer.extensions["execlog"]
        ids = {logger.info("embedded", "workflow", f"record {i}").id.replace("-", "") for i in range(75)}
        assert logger.flush(timeout=30) is True

        def stored() -> set[str]:
            with sqlite3.connect(var_dir / "webapp.sqlite3") as connection:
                return {row[0] for row in connection.execute(
                    "SELECT id FROM execution_logs WHERE trace_id = 'embedded'")}

        wait_for(lambda: stored() == ids, timeout=60, message="75 rows in SQLite")
        logger.close()
    finally:
        code = service.stop(timeout=30)
    assert code == 0, service.output()[-3000:]
