"""EXECLOG_BACKEND=thread: the flusher inserts batches itself, no Celery."""

from __future__ import annotations

import uuid

import sqlalchemy as sa


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
