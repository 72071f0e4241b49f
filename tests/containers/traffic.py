"""Steady traffic on the live stack, and the count of what it acknowledged
against what PostgreSQL stored.

Two kinds of traffic, each from a thread of its own, at its own pace:
``POST /api/v1/logs`` batches (every record carries its request and position
in ``details``), and ``POST /api/v1/executions`` of the roadmap workflow. A
202 is an acknowledgement: those records and executions must be stored,
each exactly once. A request that got no answer (the API restarting) is not
acknowledged; its records may or may not be stored, and are counted apart.
"""

from __future__ import annotations

import http.client
from abc import ABC, abstractmethod
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..support.waiting import wait_for
from .stack import Answer, Stack

ROADMAP_INPUT = {"goal": "I am new to Python, 1 hour a day, ready in 4 months"}
#: A traffic thread stops by itself after this long, whatever happens.
MAX_SECONDS = 300.0
NO_ANSWER = (OSError, http.client.HTTPException)


@dataclass
class Traffic(ABC):
    """A thread that sends one request every ``pause`` seconds until stopped
    (or ``MAX_SECONDS``), and keeps what was acknowledged."""

    stack: Stack
    name: str
    pause: float = 0.5
    acknowledged: list[str] = field(default_factory=list)
    requests: int = 0
    #: Requests without an answer, and answers that were not 202, by status.
    unanswered: int = 0
    refused: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @abstractmethod
    def send(self, request: int) -> Answer:
        """Request number ``request``; raises NO_ANSWER's errors."""

    @abstractmethod
    def acknowledge(self, body: Any) -> list[str]:
        """The ids a 202 answer acknowledged."""

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.requests += 1
            try:
                answer = self.send(self.requests - 1)
            except NO_ANSWER:
                self.unanswered += 1
            else:
                if answer.status == 202:
                    self.acknowledged.extend(self.acknowledge(answer.body))
                else:
                    self.refused[answer.status] += 1
            self._stop.wait(self.pause)  # the traffic's own pace, not a wait for a condition

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)
        assert not self._thread.is_alive(), f"{self._thread.name} did not stop"


@dataclass
class LogTraffic(Traffic):
    """POST /logs, ``per_request`` records a request."""

    pause: float = 0.05
    per_request: int = 20
    trace_id: str = field(default_factory=lambda: f"ctest-{uuid.uuid4()}")

    def send(self, request: int) -> Answer:
        records = [{"trace_id": self.trace_id, "level": "info", "category": "api",
                    "message": f"{self.name} request {request} record {i}",
                    "details": {"request": request, "i": i}} for i in range(self.per_request)]
        return self.stack.api("POST", "/api/v1/logs", {"records": records})

    def acknowledge(self, body: Any) -> list[str]:
        return body["ids"]

    def wait_acknowledged(self, count: int, timeout: float = 120) -> None:
        wait_for(lambda: len(self.acknowledged) >= count, timeout=timeout,
                 message=f"{count} records acknowledged by POST /logs ({self.name})")


@dataclass
class WorkflowTraffic(Traffic):
    """POST /executions of the roadmap workflow."""

    def send(self, request: int) -> Answer:
        return self.stack.api("POST", "/api/v1/executions", {"workflow": "roadmap", "input": ROADMAP_INPUT})

    def acknowledge(self, body: Any) -> list[str]:
        return [body["id"]]


@contextmanager
def steady_traffic(stack: Stack, name: str) -> Iterator[tuple[LogTraffic, WorkflowTraffic]]:
    """Both kinds of traffic on the ready stack, stopped at the end."""
    stack.wait_ready()
    logs = LogTraffic(stack, name).start()
    flows = WorkflowTraffic(stack, name).start()
    try:
        yield logs, flows
    finally:
        logs.stop()
        flows.stop()


# -- what is stored ----------------------------------------------------------------


def stored_log_counts(engine: sa.engine.Engine, trace_id: str) -> dict[str, int]:
    """id -> how many rows have it, for one trace."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, count(*) FROM execution_logs WHERE trace_id = :t GROUP BY id"),
            {"t": trace_id})
        return {str(row[0]): row[1] for row in rows}


def stored_executions(engine: sa.engine.Engine, ids: list[str]) -> dict[str, dict[str, Any]]:
    """id -> (status, error kind, times stored) of the given executions."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT CAST(id AS text), min(status), min(error ->> 'kind'), count(*) "
                    "FROM executions WHERE CAST(id AS text) = ANY(:ids) GROUP BY id"), {"ids": ids})
        return {row[0]: {"status": row[1], "error": row[2], "count": row[3]} for row in rows}


def execution_messages(engine: sa.engine.Engine, execution_id: str) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT message FROM execution_logs WHERE trace_id = :t ORDER BY created_at, id"),
            {"t": execution_id})
        return [row[0] for row in rows]


@dataclass
class Tally:
    """The figures of one scenario, as the report gives them."""

    scenario: str
    logs_acknowledged: int = 0
    logs_stored_of_acknowledged: int = 0
    logs_missing: int = 0
    logs_twice: int = 0
    logs_stored_unacknowledged: int = 0
    log_requests: int = 0
    log_requests_unanswered: int = 0
    log_requests_refused: dict[int, int] = field(default_factory=dict)
    executions_acknowledged: int = 0
    executions_stored: int = 0
    executions_twice: int = 0
    executions_succeeded: int = 0
    executions_resumed: int = 0
    execution_logs_complete: int = 0
    execution_requests_unanswered: int = 0
    execution_requests_refused: dict[int, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = (f"{self.scenario}: POST /logs acknowledged {self.logs_acknowledged} records "
                f"({self.log_requests} requests, {self.log_requests_unanswered} unanswered, refused "
                f"{self.log_requests_refused or 0}); stored {self.logs_stored_of_acknowledged} of them, "
                f"missing {self.logs_missing}, twice {self.logs_twice}; stored from unanswered requests "
                f"{self.logs_stored_unacknowledged}")
        if self.executions_acknowledged or self.execution_requests_unanswered:
            text += (f" | executions acknowledged {self.executions_acknowledged} "
                     f"({self.execution_requests_unanswered} unanswered, refused "
                     f"{self.execution_requests_refused or 0}); stored {self.executions_stored}, "
                     f"twice {self.executions_twice}, succeeded {self.executions_succeeded} "
                     f"({self.executions_resumed} resumed after worker_lost), "
                     f"with every log record once {self.execution_logs_complete}")
        return text + "".join(f"; {note}" for note in self.notes)


def settle(stack: Stack, engine: sa.engine.Engine, logs: LogTraffic, flows: WorkflowTraffic,
           reference: list[str], tally: Tally) -> None:
    """Everything acknowledged is stored once: records, then executions (both
    counted, whichever fails)."""
    failures = []
    for settle_one in (lambda: settle_logs(engine, logs, tally),
                       lambda: settle_executions(stack, engine, flows, reference, tally)):
        try:
            settle_one()
        except AssertionError as failure:
            failures.append(str(failure))
    assert not failures, "\n".join(failures)


def settle_logs(engine: sa.engine.Engine, traffic: LogTraffic, tally: Tally, timeout: float = 120) -> None:
    """Wait until every acknowledged record is stored; count the rest."""
    expected = set(traffic.acknowledged)
    try:
        wait_for(lambda: expected <= set(stored_log_counts(engine, traffic.trace_id)), timeout=timeout,
                 interval=0.5, message=f"the {len(expected)} acknowledged records of {traffic.name}")
    finally:
        counts = stored_log_counts(engine, traffic.trace_id)
        tally.logs_acknowledged = len(traffic.acknowledged)
        tally.logs_stored_of_acknowledged = len(expected & set(counts))
        tally.logs_missing = len(expected - set(counts))
        tally.logs_twice = sum(n - 1 for n in counts.values() if n > 1)
        tally.logs_stored_unacknowledged = len(set(counts) - expected)
        tally.log_requests = traffic.requests
        tally.log_requests_unanswered = traffic.unanswered
        tally.log_requests_refused = dict(traffic.refused)
    assert len(expected) == len(traffic.acknowledged), "the API gave one id to two records"
    assert tally.logs_missing == 0 and tally.logs_twice == 0, tally.line()


def settle_executions(stack: Stack, engine: sa.engine.Engine, traffic: WorkflowTraffic,
                      reference: list[str], tally: Tally, timeout: float = 180) -> None:
    """Every acknowledged execution is stored once and succeeds (one whose
    worker died is failed as worker_lost by beat's sweep and resumed through
    the API); the log of each is the reference run's, every record once."""
    ids = traffic.acknowledged
    resumed: set[str] = set()

    def finished() -> bool:
        executions = stored_executions(engine, ids)
        for execution_id, execution in executions.items():
            if execution["status"] == "failed" and execution["error"] == "worker_lost" \
                    and execution_id not in resumed:
                assert stack.api("POST", f"/api/v1/executions/{execution_id}/retry").status == 202
                resumed.add(execution_id)
        return len(executions) == len(ids) and all(e["status"] == "succeeded" for e in executions.values())

    def logs_complete() -> bool:
        return all(_complete(execution_messages(engine, i), reference, i in resumed) for i in ids)

    try:
        wait_for(finished, timeout=timeout, interval=1.0,
                 message=f"the {len(ids)} acknowledged executions of {traffic.name} to succeed")
        wait_for(logs_complete, timeout=120, interval=1.0, message="the log records of every execution")
    finally:
        executions = stored_executions(engine, ids)
        tally.executions_acknowledged = len(ids)
        tally.executions_stored = len(executions)
        tally.executions_twice = sum(e["count"] - 1 for e in executions.values())
        tally.executions_succeeded = sum(e["status"] == "succeeded" for e in executions.values())
        tally.executions_resumed = len(resumed)
        incomplete = [i for i in ids if not _complete(execution_messages(engine, i), reference, i in resumed)]
        tally.execution_logs_complete = len(ids) - len(incomplete)
        tally.notes += [_log_difference(execution_messages(engine, i), reference, i) for i in incomplete[:3]]
        tally.execution_requests_unanswered = traffic.unanswered
        tally.execution_requests_refused = dict(traffic.refused)
    assert tally.executions_twice == 0 and tally.executions_stored == len(ids), tally.line()


def _log_difference(messages: list[str], reference: list[str], execution_id: str) -> str:
    """What one execution's log lacks or has too many of, against the reference."""
    stored, expected = Counter(messages), Counter(reference)
    return (f"execution {execution_id}: {len(messages)} records, missing {dict(expected - stored)}, "
            f"extra {dict(stored - expected)}")


def _complete(messages: list[str], reference: list[str], resumed: bool) -> bool:
    """The messages of one execution are the reference run's, each once (a
    resumed one: each at least once, and it ended)."""
    if not resumed:
        return Counter(messages) == Counter(reference)
    return set(reference) <= set(messages) and messages.count("workflow roadmap succeeded") == 1
