"""``make run`` on a bare machine: a workflow runs on SQLite and kombu's
file-system broker, where there is no pub/sub and the events table alone is
the channel."""

from __future__ import annotations

import sqlite3
import subprocess

from webapp import create_app
from webapp.config import config_from_env
from webapp.workflow import start_execution

from ..integration.test_embedded_defaults import embedded_env
from ..support.processes import BIN, ROOT, free_port, start_celery_worker
from ..support.waiting import wait_for


def test_a_workflow_runs_on_sqlite_and_the_file_system_broker(tmp_path):
    var_dir = tmp_path / "var"
    env = embedded_env(var_dir, free_port())
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    worker = start_celery_worker(env, tmp_path / "worker.log", name="embedded-workflows")
    app = create_app(config_from_env({"WEBAPP_VAR_DIR": str(var_dir)}))
    try:
        assert app.extensions["workflow_notifier"].client is None
        with app.app_context():
            execution_id = start_execution("flaky", {"fail_times": 1, "records": 2}).id.hex

        def query(sql: str) -> list[tuple]:
            with sqlite3.connect(var_dir / "webapp.sqlite3") as connection:
                return connection.execute(sql, (execution_id,)).fetchall()

        wait_for(lambda: query("SELECT status FROM executions WHERE id = ?") == [("succeeded",)],
                 timeout=60, message="the execution to succeed")
        steps = query("SELECT name, attempts FROM execution_steps WHERE execution_id = ? ORDER BY position")
        assert steps == [("before", 1), ("flaky", 2), ("after", 1)]
        events = query("SELECT type FROM execution_events WHERE execution_id = ? ORDER BY id")
        types = [row[0] for row in events]
        assert types[0] == "execution_queued" and types[-1] == "execution_succeeded"
        assert types.count("step_retrying") == 1
    finally:
        app.extensions["execlog"].close(timeout=10)
        assert worker.stop() == 0, worker.output()[-3000:]
