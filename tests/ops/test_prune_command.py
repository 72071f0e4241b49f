"""``flask execlog prune``: what it removes, what it keeps, what it prints."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from webapp.execlog.extension import ExecLogSettings
from webapp.execlog.retention import apply_retention, partition_name
from webapp.execlog.store import store_rows
from webapp.extensions import db

from .conftest import at, rows_at

DAY = timedelta(days=1)


def messages(engine: sa.engine.Engine, trace_id: str) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(
            sa.text("SELECT message FROM execution_logs WHERE trace_id = :t ORDER BY created_at"),
            {"t": trace_id},
        ).scalars())


def prune(app) -> list[str]:
    result = app.test_cli_runner().invoke(args=["execlog", "prune"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_on_postgresql_prune_drops_old_partitions_and_says_so(
    app_factory, own_database, own_engine, trace_id
):
    now = datetime.now(timezone.utc)
    today = now.date()
    rows = rows_at(trace_id, now - 40 * DAY, now - 10 * DAY, now)
    store_rows(own_engine, rows)  # the two old ones go to the default partition
    apply_retention(own_engine, 0, today=today - 40 * DAY)  # as if the beat ran 40 days ago
    app = app_factory(SQLALCHEMY_DATABASE_URI=own_database)

    output = prune(app)

    old_days = [today - n * DAY for n in range(40, 32, -1)]
    assert output[0] == f"retention: removing rows created before {at(today - 30 * DAY).isoformat()}"
    assert output[1:] == [
        f"created partition {partition_name(today - 10 * DAY)}",
        *[f"dropped partition {partition_name(day)}" for day in old_days],
        "moved 1 row(s) out of execution_logs_default",
        "deleted 0 row(s)",
    ]
    assert messages(own_engine, trace_id) == [f"at {moment.isoformat()}" for moment in (now - 10 * DAY, now)]


def test_on_sqlite_prune_deletes_rows_older_than_the_window(app_factory, tmp_path, trace_id):
    app = app_factory(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'prune.sqlite3'}",
                      SQLALCHEMY_ENGINE_OPTIONS={}, EXECLOG_RETENTION_DAYS="7")
    now = datetime.now(timezone.utc)
    with app.app_context():
        upgrade()
        engine = db.engine
        store_rows(engine, rows_at(trace_id, now - 9 * DAY, now - 6 * DAY, now))

        output = prune(app)

        assert output == [
            f"retention: removing rows created before {at(now.date() - 7 * DAY).isoformat()}",
            "deleted 1 row(s)",
        ]
        assert messages(engine, trace_id) == [f"at {moment.isoformat()}" for moment in (now - 6 * DAY, now)]


def test_on_sqlite_the_window_starts_at_midnight_utc(app_factory, tmp_path, trace_id):
    app = app_factory(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'edge.sqlite3'}",
                      SQLALCHEMY_ENGINE_OPTIONS={})
    today = date(2031, 3, 10)
    cutoff = at(today - 3 * DAY)
    with app.app_context():
        upgrade()
        store_rows(db.engine, rows_at(trace_id, cutoff - timedelta(microseconds=1), cutoff))
        report = apply_retention(db.engine, 3, today=today)
        assert (report.cutoff, report.deleted) == (cutoff, 1)
        assert messages(db.engine, trace_id) == [f"at {cutoff.isoformat()}"]


def test_zero_days_keeps_everything(app_factory, tmp_path, trace_id):
    app = app_factory(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'all.sqlite3'}",
                      SQLALCHEMY_ENGINE_OPTIONS={}, EXECLOG_RETENTION_DAYS="0")
    with app.app_context():
        upgrade()
        store_rows(db.engine, rows_at(trace_id, at(date(2001, 1, 1))))
        assert prune(app) == ["retention: keeping every row (EXECLOG_RETENTION_DAYS=0)", "deleted 0 row(s)"]
        assert len(messages(db.engine, trace_id)) == 1


def test_a_negative_window_is_refused():
    with pytest.raises(ValueError, match="EXECLOG_RETENTION_DAYS must be 0 \\(keep everything\\) or more"):
        ExecLogSettings.from_config({"EXECLOG_RETENTION_DAYS": "-1"})
