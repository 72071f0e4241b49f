"""EXECLOG_BACKEND=thread: the flusher inserts batches itself, no Celery;
and the benchmark's direct back end (bench/direct.py), the old design."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from bench.direct import use_direct_logger

from ..support.waiting import wait_for


def test_the_thread_backend_inserts_batches_on_one_connection_of_its_own(
    app_factory, db_engine, log_table, trace_id
):
    name = f"thread-{uuid.uuid4().hex[:8]}"
    logger = app_factory(EXECLOG_BACKEND="thread", DB_APPLICATION_NAME=name).extensions["execlog"]
    ids = [logger.info(trace_id, "database", f"direct {i}").id for i in range(500)]
    assert logger.flush(timeout=30) is True

    rows = log_table.rows(trace_id)  # no waiting: flush() returns after the commit
    assert [str(r["id"]) for r in rows] == ids
    with db_engine.connect() as connection:
        held = connection.execute(sa.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name LIKE :n GROUP BY 1"), {"n": f"{name}%"}).all()
    assert held == [(f"{name}-execlog-thread", 1)]
    assert logger.stats()["published"] == 500


def test_the_direct_backend_commits_each_record_on_the_apps_pool(app_factory, db_engine, log_table, trace_id):
    name = f"direct-{uuid.uuid4().hex[:8]}"
    app = app_factory(DB_APPLICATION_NAME=name)
    logger = use_direct_logger(app)
    with db_engine.connect() as connection:
        commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        before = connection.execute(sa.text(commits)).scalar_one()
    records = [logger.info(trace_id, "database", f"direct {i}") for i in range(20)]

    assert [str(r["id"]) for r in log_table.rows(trace_id)] == [r.id for r in records]  # at once
    with db_engine.connect() as connection:
        held = connection.execute(sa.text(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE :n"),
            {"n": f"{name}%"}).scalars().all()
    assert held == [name], "the app's own pool, not a connection of the logger's"
    assert logger.flush() is True and logger.stats()["published"] == 20

    with app.app_context():
        from webapp.extensions import db

        db.engine.dispose()  # a backend that exits reports its statistics

    def commits_since() -> int:
        with db_engine.connect() as connection:
            return connection.execute(sa.text(commits)).scalar_one() - before

    wait_for(lambda: commits_since() >= 20, timeout=30, message="one transaction per record")


def test_with_the_direct_backend_an_exhausted_pool_fails_the_caller(app_factory, trace_id):
    import pytest

    app = app_factory(SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2})
    logger = use_direct_logger(app)
    with app.app_context():
        from webapp.extensions import db

        with db.engine.connect():  # the request's own connection: the only one
            with pytest.raises(sa.exc.TimeoutError):
                logger.info(trace_id, "database", "needs a second connection")
