"""Fixtures of the operations tests: databases of their own, records at chosen
times, a broker no other worker reads."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from webapp import create_app
from webapp.config import config_from_env
from webapp.execlog.fields import EPOCH
from webapp.extensions import db

from ..conftest import (
    PG_ADMIN_URL, TEST_DB_NAME, _database_url, _recreate_database,
)
from ..support.records import make_record

_counter = itertools.count(1)


def drop_database(name: str) -> None:
    admin_url = _database_url(sa.make_url(PG_ADMIN_URL).database)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def create_database(name: str) -> str:
    """A new, empty database of this suite's (``TEST_DB_NAME`` prefix)."""
    _recreate_database(name)
    return _database_url(name)


def migrate(url: str, var_dir: Path, revision: str = "head", *, down: bool = False) -> None:
    """``flask db upgrade`` (or ``downgrade``) to ``revision``, in-process."""
    app = create_app(config_from_env({"DATABASE_URL": url, "WEBAPP_VAR_DIR": str(var_dir)}))
    try:
        with app.app_context():
            (downgrade if down else upgrade)(revision=revision)
            db.engine.dispose()
    finally:
        app.extensions["execlog"].close()


@pytest.fixture(scope="module")
def own_database(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database migrated to head for one test module, dropped after it."""
    name = f"{TEST_DB_NAME}_{request.module.__name__.rsplit('.', 1)[-1]}"
    url = create_database(name)
    migrate(url, tmp_path_factory.mktemp("migrate"))
    yield url
    drop_database(name)


@pytest.fixture
def own_engine(own_database: str) -> Iterator[sa.engine.Engine]:
    engine = sa.create_engine(own_database, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second, microsecond), tzinfo=timezone.utc)


def rows_at(trace_id: str, *moments: datetime) -> list[list[Any]]:
    """Wire rows created at the given moments, as the logger would make them."""
    return [
        make_record(trace_id, "info", "workflow", f"at {moment.isoformat()}",
                    created_ns=(moment - EPOCH) // timedelta(microseconds=1) * 1000,
                    counter=next(_counter)).to_wire()
        for moment in moments
    ]


def where_stored(engine: sa.engine.Engine, trace_id: str) -> list[tuple[str, datetime]]:
    """(table, created_at) of each row of a trace, in time order."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT tableoid::regclass::text, created_at FROM execution_logs "
                "WHERE trace_id = :t ORDER BY created_at, id"
            ),
            {"t": trace_id},
        )
        return [(row[0], row[1]) for row in rows]
