"""Migration 0003 on a table that already holds rows: PostgreSQL gets daily
partitions, SQLite the same primary key; both keep every row, both ways."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from webapp.execlog.fields import COLUMNS, created_at_of
from webapp.execlog.retention import DAYS_AHEAD, partition_name
from webapp.models import ExecutionLog

from ..conftest import TEST_DB_NAME
from .conftest import at, create_database, drop_database, migrate, rows_at, where_stored

DAY = timedelta(days=1)
MODEL_KEY = [column.name for column in ExecutionLog.__table__.primary_key.columns]


#: The columns of execution_logs before migration 0006 added ``attempt``.
_BEFORE_0006 = sa.table(
    "execution_logs",
    *(sa.column(name, {"id": sa.Uuid(), "created_at": sa.DateTime(timezone=True), "details": sa.JSON()}
                .get(name)) for name in COLUMNS if name != "attempt"),
)


def store_rows(engine: sa.engine.Engine, rows: list[list]) -> None:
    """Store wire rows in a table of the schema before migration 0006."""
    values = []
    for row in rows:
        value = {name: row[i] for i, name in enumerate(COLUMNS) if name != "attempt"}
        value["id"] = uuid.UUID(value["id"])
        value["created_at"] = created_at_of(value["created_at"])
        values.append(value)
    with engine.begin() as connection:
        connection.execute(_BEFORE_0006.insert(), values)


def primary_key(engine: sa.engine.Engine) -> list[str]:
    return sa.inspect(engine).get_pk_constraint("execution_logs")["constrained_columns"]


def relkind(engine: sa.engine.Engine) -> str:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT relkind FROM pg_class WHERE oid = 'execution_logs'::regclass")
        ).scalar_one()


def test_postgresql_rows_move_into_daily_partitions_and_back(tmp_path, trace_id):
    name = f"{TEST_DB_NAME}_migration"
    url = create_database(name)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        migrate(url, tmp_path, "0001_initial")
        today = datetime.now(timezone.utc).date()
        moments = [at(today - 400 * DAY, 5), at(today - 2 * DAY, 23, 59, 59, 999_999), at(today)]
        store_rows(engine, rows_at(trace_id, *moments))

        migrate(url, tmp_path)
        assert relkind(engine) == "p" and primary_key(engine) == MODEL_KEY == ["id", "created_at"]
        assert where_stored(engine, trace_id) == [
            (partition_name(moment.date()), moment) for moment in moments
        ]
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
        assert {partition_name(today + n * DAY) for n in range(DAYS_AHEAD + 1)} <= tables

        migrate(url, tmp_path, "0001_initial", down=True)
        assert relkind(engine) == "r" and primary_key(engine) == ["id"]
        assert where_stored(engine, trace_id) == [("execution_logs", moment) for moment in moments]

        migrate(url, tmp_path)
        assert len(where_stored(engine, trace_id)) == 3
    finally:
        engine.dispose()
        drop_database(name)


def test_sqlite_gets_the_same_primary_key_and_keeps_its_rows(tmp_path, trace_id):
    url = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    migrate(url, tmp_path, "0001_initial")
    store_rows(engine, rows_at(trace_id, at(date(2026, 1, 1)), at(date(2026, 1, 2))))

    def stored() -> int:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT count(*) FROM execution_logs WHERE trace_id = :t"), {"t": trace_id}
            ).scalar_one()

    migrate(url, tmp_path)
    assert primary_key(engine) == MODEL_KEY and stored() == 2
    migrate(url, tmp_path, "0001_initial", down=True)
    assert primary_key(engine) == ["id"] and stored() == 2
    engine.dispose()
