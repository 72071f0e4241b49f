"""GET /api/v1/executions/<id>/events: Server-Sent Events framing, resuming
with Last-Event-ID, the end of a stream, late log records, and no database
connection held while a stream waits."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
import redis
import sqlalchemy as sa

from webapp.extensions import db
from webapp.queries.feed import ExecutionFeed
from webapp.workflow import current_notifier
from webapp.workflow.notify import channel

from ..support.waiting import wait_for
from .conftest import response_lines, sse_messages, wait_for_status
from .test_executions import assert_problem

FAST = {"API_SSE_POLL_INTERVAL": 0.2, "API_SSE_HEARTBEAT": 0.5, "API_SSE_LOG_DELAY": 3.0}


def events_url(execution_id: str) -> str:
    return f"/api/v1/executions/{execution_id}/events"


def read_stream(client, execution_id: str, query: str = "", **headers: str) -> list[dict]:
    """Every message of a stream, to its end (comments left out)."""
    response = client.get(events_url(execution_id) + query, headers=headers, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream" and response.headers["Cache-Control"] == "no-cache"
    try:
        return [m for m in sse_messages(response_lines(response)) if "comment" not in m]
    finally:
        response.close()


@pytest.fixture
def fast_client(app_factory):
    return app_factory(**FAST).test_client()


@pytest.mark.usefixtures("celery_worker")
def test_a_live_stream_sends_events_and_logs_and_ends_after_the_final_event(fast_client):
    started = fast_client.post("/api/v1/executions",
                               json={"workflow": "synthetic-emit", "input": {"records": 5}})
    execution_id = started.json["id"]

    stream = read_stream(fast_client, execution_id)

    assert stream[0] == {"retry": "2000"}
    messages = stream[1:]
    events = [m for m in messages if m["event"] != "log"]
    assert [m["event"] for m in events] == ["execution_queued", "execution_started", "step_started",
                                            "step_succeeded", "execution_succeeded"]
    assert messages[-1]["event"] == "execution_succeeded", "the final event is the last message"
    assert [e["data"]["id"] for e in events] == sorted(e["data"]["id"] for e in events)
    assert all(m["data"]["execution_id"] == execution_id for m in events)
    logs = [m["data"] for m in messages if m["event"] == "log"]
    stored = fast_client.get(f"/api/v1/executions/{execution_id}/logs").json["items"]
    assert sorted(log["id"] for log in logs) == sorted(log["id"] for log in stored), "sent once each"
    assert "workflow synthetic-emit succeeded" in [log["message"] for log in logs]
    for message in messages:
        event_id, _, log_id = message["id"].partition(":")
        assert int(event_id) <= events[-1]["data"]["id"]
        assert log_id == "" or uuid.UUID(log_id)


@pytest.mark.usefixtures("celery_worker")
def test_a_stream_resumes_after_its_last_event_id(fast_client):
    started = fast_client.post("/api/v1/executions", json={"workflow": "flaky", "input": {"fail_times": 1}})
    execution_id = started.json["id"]
    wait_for_status(fast_client, execution_id)
    # Every record stored first: one that lands while the first read runs
    # is sent later in it than in the reads that resume it.
    wait_for(lambda: fast_client.get(f"/api/v1/executions/{execution_id}").json["logs"]["complete"],
             timeout=30, message="the whole log stored")
    whole = read_stream(fast_client, execution_id)[1:]
    assert len(whole) > 10

    # ... including right after a log record, before an event: that event's
    # position must still name the record.
    after_a_log = next(i for i in range(1, len(whole))
                       if whole[i]["event"] != "log" and whole[i - 1]["event"] == "log")
    for cut in (1, 6, after_a_log, len(whole) - 2):
        rest = read_stream(fast_client, execution_id, **{"Last-Event-ID": whole[cut - 1]["id"]})[1:]
        assert rest == whole[cut:], f"resumed after message {cut}"
        # A new EventSource (after a refusal) cannot send the header: the query says the same.
        query = "?" + urlencode({"last_event_id": whole[cut - 1]["id"]})
        assert read_stream(fast_client, execution_id, query)[1:] == whole[cut:], f"query, after {cut}"
    assert read_stream(fast_client, execution_id, "?last_event_id=0:",
                       **{"Last-Event-ID": whole[5]["id"]})[1:] == whole[6:], "the header wins"


def test_an_idle_stream_sends_heartbeats_between_framed_messages(fast_client, rows, execution_id):
    rows.event(execution_id, "execution_queued", {"workflow": "roadmap", "steps": ["intent"]})
    record = rows.log(execution_id, "line one")
    response = fast_client.get(events_url(execution_id), buffered=False)
    lines = response_lines(response)
    try:
        head = [next(lines) for _ in range(9)]
        comment = wait_for(lambda: next(lines).startswith(":") or None, timeout=10, interval=0)
    finally:
        response.close()
    event_id = int(head[2].removeprefix("id: ").removesuffix(":"))
    assert head[:2] == ["retry: 2000", ""]
    assert head[2:4] == [f"id: {event_id}:", "event: execution_queued"]
    event = json.loads(head[4].removeprefix("data: "))
    assert {k: event[k] for k in ("id", "execution_id", "type", "data")} == {
        "id": event_id, "execution_id": execution_id, "type": "execution_queued",
        "data": {"workflow": "roadmap", "steps": ["intent"]}}
    assert head[5:8] == ["", f"id: {event_id}:{record}", "event: log"]
    assert json.loads(head[8].removeprefix("data: "))["message"] == "line one"
    assert comment is True


def test_on_redis_a_published_event_wakes_a_waiting_stream(app_factory, execution_id, redis_url):
    app = app_factory(API_SSE_POLL_INTERVAL=60.0, API_SSE_HEARTBEAT=60.0)
    response = app.test_client().get(events_url(execution_id), buffered=False)
    lines = response_lines(response)
    subscribers = redis.Redis.from_url(redis_url)

    def publish_once_subscribed() -> None:
        wait_for(lambda: subscribers.pubsub_numsub(channel(execution_id))[0][1] > 0, timeout=30)
        with app.app_context():
            current_notifier().publish(uuid.UUID(execution_id), "execution_started", {"run": 1})
            db.session.commit()  # the event is broadcast once it is committed

    publisher = threading.Thread(target=publish_once_subscribed)
    try:
        assert [next(lines), next(lines)] == ["retry: 2000", ""]
        publisher.start()
        started = time.monotonic()
        assert next(lines).startswith("id: ")  # blocks until the stream polls again
        assert next(lines) == "event: execution_started"
        assert time.monotonic() - started < 30, "woken by the event, not by the 60 s poll"
    finally:
        publisher.join()
        response.close()


def test_a_waiting_stream_holds_no_database_connection(app_factory, rows, db_engine):
    name = f"sse-{uuid.uuid4().hex[:8]}"
    app = app_factory(**FAST, DB_APPLICATION_NAME=name, SQLALCHEMY_ENGINE_OPTIONS={
        "pool_size": 1, "max_overflow": 0, "pool_timeout": 2})
    client = app.test_client()
    idle = [rows.execution() for _ in range(3)]
    streams = [client.get(events_url(execution_id), buffered=False) for execution_id in idle]
    readers = [response_lines(stream) for stream in streams]
    try:
        for _round in range(3):
            for reader in readers:  # each read runs the stream's polls until its next heartbeat
                wait_for(lambda: next(reader).startswith(":") or None, timeout=10, interval=0)
                with app.app_context():
                    from webapp.extensions import db

                    assert db.engine.pool.checkedout() == 0
                assert busy_connections(db_engine, name) == 0
            assert client.get(f"/api/v1/executions/{idle[0]}").status_code == 200  # the one connection
    finally:
        for stream in streams:
            stream.close()


def busy_connections(engine: sa.engine.Engine, application_name: str) -> int:
    """Connections of that name inside a transaction or a query."""
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
            "AND state IN ('active', 'idle in transaction')"), {"name": application_name}).scalar_one()


@pytest.mark.parametrize(
    "header, status, fragment",
    [
        ("banana", 400, "Last-Event-ID: 'banana' is not a position of this stream (<event id>:<log id>)"),
        ("3:not-a-uuid", 400, "Last-Event-ID: badly formed hexadecimal UUID string"),
        ("3:0190c1f4-0000-7000-8000-000000000000", 400, "has no log record 0190c1f4-0000-7000-8000"),
    ],
)
def test_a_bad_last_event_id_is_refused(client, execution_id, header, status, fragment):
    assert_problem(client.get(events_url(execution_id), headers={"Last-Event-ID": header}), status, fragment)
    in_query = fragment.replace("Last-Event-ID", "last_event_id")
    assert_problem(client.get(events_url(execution_id) + "?" + urlencode({"last_event_id": header})),
                   status, in_query)


def test_a_nul_in_the_last_event_id_query_is_refused(client, execution_id):
    assert_problem(client.get(events_url(execution_id) + "?last_event_id=1%00"), 400, "NUL")


def test_an_unknown_execution_has_no_stream(client):
    missing = uuid.uuid4()
    assert_problem(client.get(events_url(str(missing))), 404, f"no execution {missing}")


# -- the feed, poll by poll ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def polled(app, feed: ExecutionFeed) -> list[str]:
    with app.app_context():
        return [m.data.get("message", m.name) for m in feed.poll()]


def test_a_record_that_lands_late_is_sent_once_within_the_delay(app, rows, execution_id):
    feed = ExecutionFeed(uuid.UUID(execution_id), log_delay=5.0)
    rows.log(execution_id, "a", ago=3)
    rows.log(execution_id, "c", ago=1)
    assert polled(app, feed) == ["a", "c"]
    rows.log(execution_id, "b, logged before c, stored after it", ago=2)
    rows.log(execution_id, "d")
    assert polled(app, feed) == ["b, logged before c, stored after it", "d"]
    rows.log(execution_id, "too late: logged long before d", ago=60)
    assert polled(app, feed) == []
    assert polled(app, feed) == []


def test_the_final_event_waits_for_late_logs_and_is_sent_last(app, rows, execution_id):
    clock = Clock()
    feed = ExecutionFeed(uuid.UUID(execution_id), log_delay=2.0, clock=clock)
    rows.event(execution_id, "execution_started")
    rows.log(execution_id, "working")
    rows.event(execution_id, "execution_failed", {"error": {"message": "no"}})
    assert polled(app, feed) == ["execution_started", "working"] and not feed.done
    rows.log(execution_id, "the last words, stored after the final event")
    assert polled(app, feed) == ["the last words, stored after the final event"] and not feed.done
    clock.now += timedelta(seconds=3)
    assert polled(app, feed) == ["execution_failed"] and feed.done


def test_a_final_event_followed_by_a_resume_does_not_end_the_feed(app, rows, execution_id):
    clock = Clock()
    feed = ExecutionFeed(uuid.UUID(execution_id), log_delay=1.0, clock=clock)
    rows.event(execution_id, "execution_failed")
    assert polled(app, feed) == []
    rows.event(execution_id, "execution_resumed")
    rows.event(execution_id, "execution_started")
    assert polled(app, feed) == ["execution_failed", "execution_resumed", "execution_started"]
    clock.now += timedelta(seconds=5)
    assert polled(app, feed) == [] and not feed.done
