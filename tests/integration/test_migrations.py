"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from webapp.execlog.retention import include_name
from webapp.extensions import db

#: What autogenerate compares (webapp/migrations/env.py): not the partitions.
OPTIONS = {"compare_type": True, "include_name": include_name}


def test_migrated_postgresql_schema_matches_the_models(app, db_engine):
    with db_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=OPTIONS)
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_migrations_run_on_sqlite_too(app_factory, tmp_path):
    from flask_migrate import upgrade
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    app = app_factory(SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_ENGINE_OPTIONS={})
    with app.app_context():
        upgrade()
        tables = set(sa.inspect(db.engine).get_table_names())
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=OPTIONS)
            differences = compare_metadata(context, db.metadata)
    assert {"executions", "execution_logs", "execution_log_dead_letters"} <= tables
    assert differences == []
