"""Fixtures: a test database of our own, Redis, a real Celery worker, the app.

The suite talks to real services: PostgreSQL (``TEST_PG_ADMIN_URL``, default
the local server as user postgres) in a database it creates,
``webapp_test``; Redis (``TEST_REDIS_URL``, default database 11 of the local
server); and a Celery worker process started once per session, consuming the
``logs`` and ``workflows`` queues of that Redis database. ``make test`` starts
PostgreSQL and Redis first when they are stopped.

Two suites can run at once on one machine when each has its own
``TEST_DB_NAME``, ``TEST_REDIS_URL``, ``TEST_SPARE_REDIS_URL`` and
``TEST_BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
import sqlalchemy as sa
from flask import Flask

from webapp import create_app
from webapp.config import config_from_env

from .support.processes import ManagedProcess, start_celery_worker
from .support.waiting import wait_for

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DB_NAME = os.environ.get("TEST_DB_NAME", "webapp_test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
#: A second Redis database, for tests that need a broker no other worker reads.
SPARE_REDIS_URL = os.environ.get("TEST_SPARE_REDIS_URL", "redis://127.0.0.1:6379/10")
#: The Redis database of the benchmark harness's test (bench/run.py --tiny).
BENCH_REDIS_URL = os.environ.get("TEST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
#: Keys our Celery queues use in the test Redis database.
QUEUE_KEYS = ("logs", "workflows", "unacked", "unacked_index", "unacked_mutex")


def _database_url(name: str) -> str:
    url = sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg2", database=name)
    return url.render_as_string(hide_password=False)


def admin_sql(*statements: str) -> None:
    """Run statements on the server's admin database, outside a transaction
    (CREATE and DROP DATABASE of the suite's own databases)."""
    connection = psycopg2.connect(PG_ADMIN_URL)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def _recreate_database(name: str) -> None:
    """Drop and create the test database (ours: only this suite creates it)."""
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def service_env(database_url: str, redis_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a process of ours (worker, gunicorn, CLI) in tests."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXECLOG_", "CELERY_", "DATABASE_URL", "REDIS_URL", "GUNICORN_"))
    }
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=redis_url,
        WEBAPP_VAR_DIR=str(var_dir),
        CELERY_VISIBILITY_TIMEOUT="30",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def session_var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def database_url(session_var_dir: Path) -> str:
    """A freshly created and migrated PostgreSQL database for this session."""
    _recreate_database(TEST_DB_NAME)
    url = _database_url(TEST_DB_NAME)
    from flask_migrate import upgrade

    migrate_app = create_app(
        config_from_env({"DATABASE_URL": url, "WEBAPP_VAR_DIR": str(session_var_dir / "migrate")})
    )
    with migrate_app.app_context():
        upgrade()
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    client.delete(*QUEUE_KEYS)
    for key in client.scan_iter("_kombu.binding.*"):
        client.delete(key)
    return REDIS_URL


@pytest.fixture
def spare_broker() -> Iterator[str]:
    """A Redis database no session worker reads (``TEST_SPARE_REDIS_URL``),
    its queues emptied before and after the test: its URL. An app on it
    (``CELERY=celery_config(spare_broker, tmp_path)``) queues what nobody
    takes unless the test starts a worker of its own."""
    client = redis.Redis.from_url(SPARE_REDIS_URL)
    client.delete(*QUEUE_KEYS)
    yield SPARE_REDIS_URL
    client.delete(*QUEUE_KEYS)


@pytest.fixture(scope="session")
def celery_worker(database_url: str, redis_url: str, session_var_dir: Path) -> Iterator[ManagedProcess]:
    """One real Celery worker for the session, on the test database and Redis."""
    env = service_env(database_url, redis_url, session_var_dir)
    worker = start_celery_worker(env, session_var_dir / "worker.log", name=f"tests-{os.getpid()}")
    yield worker
    worker.stop()


def make_config(database_url: str, redis_url: str, var_dir: Path, **overrides: Any) -> dict[str, Any]:
    config = config_from_env(
        {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": redis_url,
            "WEBAPP_VAR_DIR": str(var_dir),
            "DB_APPLICATION_NAME": "webapp-tests",
        }
    )
    config["TESTING"] = True
    config.update(overrides)
    return config


@pytest.fixture
def app_factory(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """Build apps on the test services; each one's logger is closed after the test."""
    built: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        var_dir = tmp_path / f"var{len(built)}"
        app = create_app(make_config(database_url, redis_url, var_dir, **overrides))
        built.append(app)
        return app

    yield factory
    for app in built:
        app.extensions["execlog"].close(timeout=10)
        with app.app_context():
            from webapp.extensions import db

            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def app(app_factory: Any) -> Flask:
    """The app on the test services (pytest-flask's ``client`` uses it)."""
    return app_factory()


@pytest.fixture
def db_engine(database_url: str) -> Iterator[sa.engine.Engine]:
    """An engine of the test's own, to read what the worker stored."""
    engine = sa.create_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture
def trace_id() -> str:
    return f"test-{uuid.uuid4()}"


class LogTable:
    """Reads ``execution_logs`` as the worker left it."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine

    def count(self, trace_id: str) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT count(*) FROM execution_logs WHERE trace_id = :t"), {"t": trace_id}
            ).scalar_one()

    def rows(self, trace_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            result = connection.execute(
                sa.text(
                    "SELECT * FROM execution_logs WHERE trace_id = :t ORDER BY created_at, id"
                ),
                {"t": trace_id},
            )
            return [dict(row._mapping) for row in result]

    def ids(self, trace_ids: list[str]) -> list[str]:
        with self.engine.connect() as connection:
            result = connection.execute(
                sa.text("SELECT id FROM execution_logs WHERE trace_id = ANY(:t)"), {"t": trace_ids}
            )
            return [str(row[0]) for row in result]

    def wait_for_count(self, trace_id: str, expected: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        wait_for(
            lambda: self.count(trace_id) >= expected,
            timeout=timeout,
            message=f"{expected} rows of trace {trace_id}",
        )
        return self.rows(trace_id)

    def dead_letters(self, containing: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            result = connection.execute(
                sa.text(
                    "SELECT * FROM execution_log_dead_letters WHERE payload LIKE :p ORDER BY id"
                ),
                {"p": f"%{containing}%"},
            )
            return [dict(row._mapping) for row in result]


@pytest.fixture
def log_table(db_engine: sa.engine.Engine) -> LogTable:
    return LogTable(db_engine)
