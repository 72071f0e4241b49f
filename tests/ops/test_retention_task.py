"""The beat task ``execlog.maintain_partitions`` on a real worker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from webapp.config import RETENTION_TASK
from webapp.execlog.retention import apply_retention, partition_name
from webapp.execlog.store import store_rows

from ..support.waiting import wait_for
from .conftest import rows_at

DAY = timedelta(days=1)


@pytest.mark.usefixtures("celery_worker")
def test_the_task_on_the_logs_queue_applies_the_retention_on_a_worker(app, db_engine, log_table, trace_id):
    now = datetime.now(timezone.utc)
    today = now.date()
    store_rows(db_engine, rows_at(trace_id, now - 45 * DAY, now))  # the old row: default partition
    made_back_then = apply_retention(db_engine, 0, today=today - 60 * DAY)
    assert len(made_back_then.created) == 8

    app.extensions["celery"].send_task(RETENTION_TASK)

    def old_partitions() -> set[str]:
        with db_engine.connect() as connection:
            names = set(sa.inspect(connection).get_table_names())
        return names & set(made_back_then.created)

    wait_for(lambda: not old_partitions() and log_table.count(trace_id) == 1, timeout=60,
             message="the worker to drop the old partitions and delete the old row")
    assert [row["created_at"] for row in log_table.rows(trace_id)] == [now]
    assert partition_name(today + 7 * DAY) in sa.inspect(db_engine).get_table_names()


def test_beat_runs_the_task_every_hour(app):
    celery = app.extensions["celery"]
    entries = [entry for entry in celery.conf.beat_schedule.values() if entry["task"] == RETENTION_TASK]
    celery.loader.import_default_modules()  # what a worker does at start

    assert len(entries) == 1 and str(entries[0]["schedule"]).startswith("<crontab: 7 * * * *")
    assert RETENTION_TASK in celery.tasks
    assert celery.amqp.router.route({}, RETENTION_TASK)["queue"].name == "logs"
