"""Fixtures of the workflow tests: reading executions as the worker left
them, and starting them the way the CLI and the API do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from webapp.execlog.fields import MESSAGE, TRACE_ID
from webapp.extensions import db
from webapp.workflow import start_execution
from webapp.workflow.notify import PENDING_KEY

from ..support.broker import QueueReader
from ..support.waiting import wait_for, wait_for_execution


class ExecutionTables:
    """``executions``, ``execution_steps`` and ``execution_events``, read
    on a connection of the test's own."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine

    def _all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.text(sql), params)]

    def get(self, execution_id: str) -> dict[str, Any]:
        rows = self._all("SELECT * FROM executions WHERE id = :id", id=execution_id)
        assert rows, f"no execution {execution_id}"
        return rows[0]

    def steps(self, execution_id: str) -> dict[str, dict[str, Any]]:
        rows = self._all("SELECT * FROM execution_steps WHERE execution_id = :id ORDER BY position",
                         id=execution_id)
        return {row["name"]: row for row in rows}

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM execution_events WHERE execution_id = :id ORDER BY id",
                         id=execution_id)

    def wait_finished(self, execution_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return wait_for_execution(lambda: self.get(execution_id), execution_id, timeout=timeout)


@pytest.fixture
def tables(db_engine: sa.engine.Engine) -> ExecutionTables:
    return ExecutionTables(db_engine)


def start(app: Flask, workflow: str, data: Any, **kwargs: Any) -> str:
    """``start_execution`` in an app context, as a request would; the id."""
    with app.app_context():
        return str(start_execution(workflow, data, **kwargs).id)


def messages(log_rows: list[dict[str, Any]]) -> list[str]:
    return [row["message"] for row in log_rows]


def wait_for_log(log_table: Any, trace_id: str, message: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The trace's rows, once one with ``message`` is stored."""
    def stored() -> list[dict[str, Any]] | None:
        rows = log_table.rows(trace_id)
        return rows if message in messages(rows) else None

    return wait_for(stored, timeout=timeout, message=f"log {message!r} of {trace_id}")


def sweep(app: Flask, stale_seconds: float | None = None,
          queued_stale_seconds: float | None = None) -> list[str]:
    """Run the stalled-execution sweep (``stale_seconds`` defaults to the
    app's setting; queued executions only with ``queued_stale_seconds``);
    the ids it failed, other tests' stalled executions possibly among them."""
    from webapp.workflow.current import current_notifier
    from webapp.workflow.heartbeat import fail_stalled

    stale = app.config["WORKFLOW_STALE_SECONDS"] if stale_seconds is None else stale_seconds
    with app.app_context():
        failed = fail_stalled(current_notifier(), stale, queued_stale_seconds=queued_stale_seconds)
    return [str(execution_id) for execution_id in failed]


class DatabaseWentAway(Exception):
    """What ``commit_refused`` makes a commit raise."""


@contextmanager
def commit_refused(event: str) -> Iterator[None]:
    """Within an app context: every commit of the session that would
    publish an execution event of type ``event`` fails (``DatabaseWentAway``),
    as when the process dies or the database goes away in the commit."""
    def refuse(session: Any) -> None:
        if any(payload["type"] == event for _, _, payload in session.info.get(PENDING_KEY, ())):
            raise DatabaseWentAway(f"the commit of {event} did not happen")

    sa.event.listen(db.session, "before_commit", refuse)
    try:
        yield
    finally:
        sa.event.remove(db.session, "before_commit", refuse)


def queued_messages(app: Flask, broker_url: str, trace_id: str) -> list[str]:
    """The messages of the trace's records, once the app's logger has
    shipped them to the ``logs`` queue of a broker no worker reads."""
    assert app.extensions["execlog"].flush(timeout=10)
    return [row[MESSAGE] for batch in QueueReader(broker_url, "logs").batches() for row in batch
            if row[TRACE_ID] == trace_id]
