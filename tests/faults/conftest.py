"""Fixtures of the fault suite: services of our own that a test may stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from webapp import create_app
from webapp.config import config_from_env

from ..conftest import make_config, service_env
from .harness import PrivatePostgres, PrivateRedis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis").start()
    yield redis
    redis.stop()


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres().init()
    app = create_app(config_from_env({"DATABASE_URL": postgres.url,
                                      "WEBAPP_VAR_DIR": str(tmp_path / "migrate")}))
    with app.app_context():
        upgrade()
        from webapp.extensions import db

        db.engine.dispose()
    yield postgres
    postgres.remove()


@pytest.fixture
def engine_for() -> Iterator[Any]:
    """Engines to read a database the test uses (disposed at the end)."""
    engines: list[sa.engine.Engine] = []

    def make(url: str) -> sa.engine.Engine:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


#: Fast recovery for tests: probe a down broker twice a second, redeliver a
#: dead worker's messages after 10 s, retry database errors within 2 s.
FAST_RECOVERY = {
    "EXECLOG_FLUSH_INTERVAL": "0.2",
    "EXECLOG_PROBE_INTERVAL": "0.5",
    "EXECLOG_RETRY_BACKOFF": "0.2",
    "EXECLOG_RETRY_BACKOFF_MAX": "2",
    "CELERY_VISIBILITY_TIMEOUT": "10",
}


def worker_env(database_url: str, redis_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    return service_env(database_url, redis_url, var_dir, **{**FAST_RECOVERY, **extra})


@pytest.fixture
def producer_factory(tmp_path: Path) -> Iterator[Any]:
    """In-process producers (the real app and logger) on given services."""
    apps: list[Flask] = []

    def make(database_url: str, redis_url: str, **overrides: Any) -> Flask:
        execlog = {k: v for k, v in FAST_RECOVERY.items() if k.startswith("EXECLOG_")}
        app = create_app(make_config(database_url, redis_url, tmp_path / f"producer{len(apps)}",
                                     **{**execlog, **overrides}))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["execlog"].close(timeout=10)
