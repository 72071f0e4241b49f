"""The app's database connections have a connect timeout and a statement
timeout (``DB_CONNECT_TIMEOUT``, ``DB_STATEMENT_TIMEOUT``): a database that
hangs, or a query that runs too long, is a 503 problem in bounded time, not
a request held for as long as it lasts."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from webapp.config import connect_args

from ..support.tcp import Blackhole
from ..support.waiting import wait_for
from .test_executions import assert_problem


def answered(client, path: str, timeout: float = 30.0):
    """The response to GET ``path``, asked in a thread and waited for."""
    answers: list = []
    request = threading.Thread(target=lambda: answers.append(client.get(path)))
    request.start()
    wait_for(lambda: not request.is_alive(), timeout=timeout, message=f"an answer to {path}")
    return answers[0]


def test_a_query_that_runs_past_the_statement_timeout_is_a_503(app_factory, db_engine, execution_id):
    """Here the query waits on a lock; an unanchored ``q=`` over a huge trace
    runs long the same way, and is cut the same way."""
    app = app_factory(DB_STATEMENT_TIMEOUT=0.5, TESTING=False, PROPAGATE_EXCEPTIONS=False)
    with db_engine.connect() as locker:
        locker.execute(sa.text("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE"))
        try:
            response = answered(app.test_client(), f"/api/v1/executions/{execution_id}")
        finally:
            locker.rollback()
    assert_problem(response, 503, "urn:webapp:problem:query-timeout",
                   "the query ran longer than DB_STATEMENT_TIMEOUT (0.5 s)")


def test_a_database_that_never_answers_is_a_503_after_the_connect_timeout(app_factory):
    with Blackhole() as hole:
        app = app_factory(DB_CONNECT_TIMEOUT=2, TESTING=False, PROPAGATE_EXCEPTIONS=False,
                          SQLALCHEMY_DATABASE_URI=hole.database_url)
        response = answered(app.test_client(), "/api/v1/executions")
    assert_problem(response, 503, "urn:webapp:problem:database-unavailable", "try again shortly")
    assert response.headers["Retry-After"] == "5"


def test_connections_carry_both_timeouts(app, db_engine):
    with app.app_context():
        from webapp.extensions import db

        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
    assert connect_args("postgresql://x", {"DB_CONNECT_TIMEOUT": 3, "DB_STATEMENT_TIMEOUT": 0}, "n") == {
        "application_name": "n", "connect_timeout": 3}


def test_the_loggers_own_connections_carry_them_too(app_factory):
    """The worker's batch store and the thread back end's engine: a database
    that hangs fails a batch (to be retried), never holds a worker for good."""
    from webapp.execlog.extension import own_engine, store_engine

    app = app_factory(DB_STATEMENT_TIMEOUT=0.5, DB_CONNECT_TIMEOUT=3)
    for engine in (store_engine(app), own_engine(app, "execlog-thread")):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "500ms"
            assert connection.connection.dbapi_connection.info.dsn_parameters["connect_timeout"] == "3"
        engine.dispose()
