"""Fixtures of the API tests: executions and log rows written straight into
the test database, so that a test controls their times and contents."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from webapp.execlog.ids import MonotonicStamp
from webapp.execlog.store import store_rows

from ..support.records import make_record
from ..support.waiting import FINAL_STATUSES, wait_for_execution


class Rows:
    """Writes executions, events and log records as the engine and the
    worker would, on a connection of the test's own."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine
        self.stamp = MonotonicStamp()

    def execution(self, workflow: str = "roadmap", status: str = "queued",
                  created_at: datetime | None = None, **columns: Any) -> str:
        execution_id = str(uuid.uuid4())
        now = created_at or datetime.now(timezone.utc)
        values = {"id": execution_id, "workflow": workflow, "status": status, "input": json.dumps({}),
                  "attempts": 0, "created_at": now, "updated_at": now, **columns}
        with self.engine.begin() as connection:
            connection.execute(sa.text(
                f"INSERT INTO executions ({', '.join(values)}) VALUES ({', '.join(':' + k for k in values)})"
            ), values)
        return execution_id

    def event(self, execution_id: str, type_: str, data: dict[str, Any] | None = None,
              created_at: datetime | None = None) -> int:
        with self.engine.begin() as connection:
            return connection.execute(sa.text(
                "INSERT INTO execution_events (execution_id, type, data, created_at) "
                "VALUES (:e, :t, :d, :c) RETURNING id"
            ), {"e": execution_id, "t": type_, "d": json.dumps(data or {}),
                "c": created_at or datetime.now(timezone.utc)}).scalar_one()

    def log(self, trace_id: str, message: str, *, level: str = "info", category: str = "agent",
            step: str | None = None, agent_name: str | None = None, ago: float = 0.0,
            attempt: int | None = None) -> str:
        """Store one record logged ``ago`` seconds ago; its id."""
        created_ns, counter = self.stamp.next()
        created_ns -= int(ago * 1e9)
        record = make_record(trace_id, level, category, message, created_ns=created_ns, counter=counter,
                             step=step, agent_name=agent_name, attempt=attempt)
        result = store_rows(self.engine, [record.to_wire()])
        assert result.inserted == 1
        return record.id

    def logs(self, trace_id: str, count: int, prefix: str = "record",
             attempt: int | None = None) -> list[str]:
        return [self.log(trace_id, f"{prefix} {i}", attempt=attempt) for i in range(count)]

    def log_count(self, execution_id: str, attempt: int, emitted: int, dropped: int = 0) -> None:
        """What a run reports when it ends (webapp.workflow.tally)."""
        with self.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO execution_log_counts (execution_id, attempt, emitted, dropped, reported_at) "
                "VALUES (:e, :a, :n, :d, now())"),
                {"e": execution_id, "a": attempt, "n": emitted, "d": dropped})

    def dead_letter(self, trace_id: str, attempt: int | None) -> None:
        """A row the worker could not store, as it sets it aside."""
        with self.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO execution_log_dead_letters (received_at, source, reason, payload, trace_id, "
                "attempt) VALUES (now(), 'batch', 'refused by a check', '[]', :t, :a)"),
                {"t": trace_id, "a": attempt})


@pytest.fixture
def rows(db_engine: sa.engine.Engine) -> Rows:
    return Rows(db_engine)


@pytest.fixture
def execution_id(rows: Rows) -> str:
    """A queued execution that nothing runs (it was never enqueued)."""
    return rows.execution()


def sse_messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse text/event-stream lines: each message as {"id", "event",
    "data"}, each comment as {"comment"}, and the retry field as {"retry"}."""
    message: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(": ")
            message[field] = json.loads(value) if field == "data" else value


def response_lines(response: Any) -> Iterator[str]:
    """The lines of a streamed test-client response, as they come."""
    pending = ""
    for chunk in response.response:
        pending += chunk.decode() if isinstance(chunk, bytes) else chunk
        *complete, pending = pending.split("\n")
        yield from complete


def seconds_ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def wait_for_status(client: Any, execution_id: str, statuses: tuple[str, ...] = FINAL_STATUSES,
                    timeout: float = 60.0) -> dict[str, Any]:
    return wait_for_execution(lambda: client.get(f"/api/v1/executions/{execution_id}").json,
                              execution_id, statuses, timeout)
