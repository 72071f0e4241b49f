"""The extension instances, created unbound; ``create_app`` binds them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from .execlog import execlog, tables

__all__ = ["db", "execlog", "migrate"]

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")

#: On the execution log's MetaData: one for every table of the app.
db = SQLAlchemy(metadata=tables.metadata)
migrate = Migrate(directory=MIGRATIONS_DIR)


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite (the embedded default): WAL lets the web tier read while the
    worker writes; foreign keys are off by default there."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
