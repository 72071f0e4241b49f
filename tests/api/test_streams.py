"""Event streams cannot starve the service: each process serves at most
API_SSE_MAX_STREAMS of them and each token API_SSE_MAX_STREAMS_PER_TOKEN
(503 and 429, with Retry-After), a stream ends after API_SSE_MAX_SECONDS
and resumes with Last-Event-ID, and one whose database fails ends cleanly.
Under the real gunicorn: tests/api/test_gunicorn.py."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from webapp.api.streams import stream_threads_problem

from ..support.waiting import wait_for
from .conftest import response_lines, sse_messages
from .test_auth import bearer
from .test_events import events_url
from .test_executions import assert_problem

FAST = {"API_SSE_POLL_INTERVAL": 0.1, "API_SSE_HEARTBEAT": 0.2, "API_SSE_LOG_DELAY": 0.0}


def opened(client, execution_id: str, token: str | None = None, **headers: str):
    response = client.get(events_url(execution_id), headers={**(bearer(token) if token else {}), **headers},
                          buffered=False)
    return response


def read_to_the_end(response, timeout: float = 30.0) -> list[dict]:
    """Every message and comment of a stream, read in a thread until it
    ends (or the test fails after ``timeout``)."""
    found: list[dict] = []
    reader = threading.Thread(target=lambda: found.extend(sse_messages(response_lines(response))),
                              daemon=True)
    reader.start()
    wait_for(lambda: not reader.is_alive(), timeout=timeout, message="the stream to end")
    response.close()
    return found


def test_streams_beyond_the_caps_are_refused_with_retry_after(app_factory, execution_id):
    app = app_factory(**FAST, API_AUTH="token", API_TOKENS=["a", "b", "c"], API_SSE_MAX_STREAMS=2,
                      API_SSE_MAX_STREAMS_PER_TOKEN=1, API_SSE_MAX_SECONDS=30.0)
    client = app.test_client()
    first = opened(client, execution_id, "a")
    assert first.status_code == 200
    again = opened(client, execution_id, "a")
    assert_problem(again, 429, "urn:webapp:problem:too-many-streams", "this token has 1 event streams open")
    assert 1 <= int(again.headers["Retry-After"]) <= 30
    second = opened(client, execution_id, "b")
    assert second.status_code == 200
    full = opened(client, execution_id, "c")
    assert_problem(full, 503, "urn:webapp:problem:streams-busy", "serves 2 event streams at once")
    assert 1 <= int(full.headers["Retry-After"]) <= 30

    first.close()  # the client left: its slot is free again
    third = opened(client, execution_id, "c")
    assert third.status_code == 200
    for response in (second, third):
        response.close()
    assert app.extensions["api_streams"].open_count() == 0


def test_a_refused_stream_request_gives_its_slot_back(app_factory, execution_id):
    client = app_factory(**FAST, API_SSE_MAX_STREAMS=1).test_client()
    for header in ("banana", "1:0190c1f4-0000-7000-8000-000000000000"):
        assert opened(client, execution_id, **{"Last-Event-ID": header}).status_code == 400
    assert opened(client, "00000000-0000-4000-8000-000000000000").status_code == 404
    stream = opened(client, execution_id)
    assert stream.status_code == 200
    stream.close()


def test_a_stream_ends_at_its_lifetime_and_resumes_where_it_ended(app_factory, rows, execution_id):
    """An execution that never ends (here: queued, nothing runs it) no longer
    keeps its stream, nor its thread, for ever."""
    app = app_factory(**FAST, API_SSE_MAX_SECONDS=1.0)
    client = app.test_client()
    rows.event(execution_id, "execution_queued", {"workflow": "roadmap", "steps": ["intent"]})
    rows.log(execution_id, "first")
    found = read_to_the_end(opened(client, execution_id))
    messages = [m for m in found if "event" in m]
    assert [m["event"] for m in messages] == ["execution_queued", "log"]
    assert found[-1] == {"comment": "this stream is API_SSE_MAX_SECONDS old; reconnect with Last-Event-ID"}
    assert app.extensions["api_streams"].open_count() == 0

    rows.log(execution_id, "second")
    rest = read_to_the_end(opened(client, execution_id, **{"Last-Event-ID": messages[-1]["id"]}))
    assert [m["data"]["message"] for m in rest if m.get("event") == "log"] == ["second"]


def test_a_stream_whose_database_fails_ends_and_says_so(app_factory, db_engine, execution_id):
    app = app_factory(**FAST, DB_STATEMENT_TIMEOUT=0.5, TESTING=False, PROPAGATE_EXCEPTIONS=False)
    response = opened(app.test_client(), execution_id)
    lines = response_lines(response)
    assert next(lines) == "retry: 2000"
    with db_engine.connect() as locker:
        locker.execute(sa.text("LOCK TABLE execution_events IN ACCESS EXCLUSIVE MODE"))
        try:
            found = read_to_the_end(response)
        finally:
            locker.rollback()
    assert found[-1] == {"comment": "the database cannot be read now; reconnect with Last-Event-ID"}
    assert app.extensions["api_streams"].open_count() == 0


@pytest.mark.parametrize(
    "streams, worker_class, threads, refused",
    [(4, "gthread", 8, False), (8, "gthread", 8, True), (7, "gthread", 8, False), (4, "sync", 1, False)],
)
def test_gunicorn_must_keep_threads_for_ordinary_requests(streams, worker_class, threads, refused):
    problem = stream_threads_problem({"API_SSE_MAX_STREAMS": streams}, worker_class, threads)
    assert (problem is not None) == refused
    if refused:
        assert problem.startswith(f"API_SSE_MAX_STREAMS ({streams}) must be below "
                                  f"GUNICORN_THREADS ({threads})")
