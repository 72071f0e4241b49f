"""The API under the real gunicorn (the project's config, two gthread
workers) with the session's real Celery worker: a roadmap started over HTTP
and followed on its event stream to the end."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import service_env
from ..support.processes import BIN, ManagedProcess, free_port, wait_for_port
from ..support.waiting import wait_for
from .conftest import sse_messages
from .test_events import busy_connections
from .test_metrics import samples, value

TOKEN = "gunicorn-test-" + uuid.uuid4().hex


def gunicorn(env: dict[str, str], log_path: Path) -> ManagedProcess:
    return ManagedProcess("gunicorn", [str(BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py", "wsgi:app"],
                          env, log_path)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict | str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body), headers={
                "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})})
            response = connection.getresponse()
            text = response.read().decode()
            is_json = "json" in (response.getheader("Content-Type") or "")
            return response.status, json.loads(text) if is_json else text
        finally:
            connection.close()

    def stream(self, path: str) -> tuple[http.client.HTTPConnection, Iterator[str]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
        return connection, (line.decode().rstrip("\n") for line in iter(response.readline, b""))


@pytest.fixture
def served(database_url, redis_url, tmp_path):
    port = free_port()
    name = f"web-{uuid.uuid4().hex[:8]}"
    stale = tmp_path / "web" / "prometheus" / "web" / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier run")
    env = service_env(database_url, redis_url, tmp_path / "web", GUNICORN_BIND=f"127.0.0.1:{port}",
                      WEB_CONCURRENCY="2", API_TOKENS=TOKEN, DB_APPLICATION_NAME=name,
                      API_SSE_POLL_INTERVAL="0.3", API_SSE_HEARTBEAT="1", API_SSE_LOG_DELAY="3")
    server = gunicorn(env, tmp_path / "gunicorn.log").start()
    try:
        wait_for_port(port, timeout=60)
        server.wait_for_output("API access: bearer tokens required (API_AUTH=token)")
        assert not stale.exists(), "metrics of an earlier run are removed at start"
        yield Client(port), name
    finally:
        server.stop()


@pytest.mark.usefixtures("celery_worker")
def test_a_roadmap_started_over_http_is_followed_to_its_end(served, rows, db_engine):
    client, application_name = served
    assert client.request("GET", "/api/v1/runners", headers={"Authorization": "Bearer nope"})[0] == 401

    status, execution = client.request("POST", "/api/v1/executions", {
        "workflow": "roadmap", "input": {"goal": "I am new to Python, 1 hour a day, ready in 4 months"}})
    assert status == 202, execution
    connection, lines = client.stream(execution["links"]["events"])
    try:
        messages = [m for m in sse_messages(lines) if "event" in m]
    finally:
        connection.close()

    events = [m["event"] for m in messages if m["event"] != "log"]
    assert events[0] == "execution_queued" and events[-1] == "execution_succeeded"
    assert messages[-1]["event"] == "execution_succeeded"
    assert [m["data"]["data"]["step"] for m in messages if m["event"] == "step_succeeded"] == [
        "intent", "curriculum", "validate", "schedule"]
    logged = [m["data"]["message"] for m in messages if m["event"] == "log"]
    assert "workflow roadmap started" in logged and "workflow roadmap succeeded" in logged
    status, done = client.request("GET", execution["links"]["self"])
    assert (status, done["status"], done["result"]["topic"]) == (200, "succeeded", "python")

    status, text = client.request("GET", "/metrics")
    found = samples(text)
    started = value(found, "http_requests_total", method="POST", endpoint="/api/v1/executions", status="202")
    assert started == 1
    assert value(found, "http_requests_total", method="GET", endpoint="/api/v1/runners", status="401") == 1


@pytest.mark.usefixtures("celery_worker")
def test_a_waiting_stream_under_gunicorn_holds_no_database_connection(served, rows, db_engine):
    client, application_name = served
    connection, lines = client.stream(f"/api/v1/executions/{rows.execution()}/events")
    try:
        for _ in range(3):
            wait_for(lambda: next(lines).startswith(":") or None, timeout=15, interval=0)
            assert busy_connections(db_engine, application_name) == 0
    finally:
        connection.close()


def refusal_to_start(env: dict[str, str], log_path: Path) -> str:
    """What gunicorn said when it refused to start (exit status 1)."""
    server = gunicorn(env, log_path).start()
    try:
        assert server.process.wait(timeout=60) == 1
        return server.output()
    finally:
        server.stop()


def test_gunicorn_refuses_to_serve_open_beyond_loopback(database_url, redis_url, tmp_path):
    env = service_env(database_url, redis_url, tmp_path / "web", GUNICORN_BIND=f"0.0.0.0:{free_port()}")
    said = refusal_to_start(env, tmp_path / "gunicorn.log")
    assert "refusing to serve the API open (API_AUTH=open, no token asked) on 0.0.0.0:" in said


def open_streams(port: int, path: str, tokens: list[str]) -> tuple[list[http.client.HTTPConnection], list]:
    """One stream request per token, all sent before any answer is read;
    the connections (streams left open) and each answer's status and
    Retry-After."""
    connections = []
    for token in tokens:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        connections.append(connection)
    answers = []
    for connection in connections:
        response = connection.getresponse()
        answers.append((response.status, response.getheader("Retry-After")))
        if response.status != 200:
            response.read()
    return connections, answers


def timed(client: Client, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    status, _ = client.request("GET", path)
    return status, time.perf_counter() - started


@pytest.mark.parametrize("count", [40, 200])
def test_open_streams_leave_the_service_answering(database_url, redis_url, tmp_path, rows, count):
    """With the default gunicorn settings (2 workers x 8 threads), 40 streams
    of an execution that never ends took every thread and /healthz timed out.
    Now each process serves 4 streams and refuses the rest at once (429 per
    token, 503 per process, both with Retry-After); the other threads answer
    ordinary requests while the streams stay open."""
    port = free_port()
    stream_tokens = [f"stream-{i}-{uuid.uuid4().hex}" for i in range(20)]
    env = service_env(database_url, redis_url, tmp_path / "web", GUNICORN_BIND=f"127.0.0.1:{port}",
                      API_TOKENS=",".join([TOKEN, *(f"{token}:read" for token in stream_tokens)]),
                      API_SSE_HEARTBEAT="1", API_SSE_POLL_INTERVAL="0.5")
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "API_SSE_MAX_STREAMS",
                 "API_SSE_MAX_STREAMS_PER_TOKEN"):
        env.pop(name, None)  # the defaults: 2 workers, 8 threads, 4 streams a process, 2 a token
    server = gunicorn(env, tmp_path / "gunicorn.log").start()
    connections: list[http.client.HTTPConnection] = []
    try:
        wait_for_port(port, timeout=60)
        client = Client(port)
        execution_id = rows.execution()  # queued, and nothing runs it: its streams never end by themselves
        connections, answers = open_streams(port, f"/api/v1/executions/{execution_id}/events",
                                            [stream_tokens[i % 20] for i in range(count)])
        served = [status for status, _ in answers if status == 200]
        refused = [(status, after) for status, after in answers if status != 200]
        assert 1 <= len(served) <= 2 * 4, answers
        assert {status for status, _ in refused} <= {429, 503}
        assert all(int(after) >= 1 for _, after in refused)

        # Liveness, not speed: with every thread held by a stream that never
        # ends, these were never answered; a bound this loose cannot trip on
        # a busy machine (the speed is for the bench to measure).
        for path in ("/healthz", f"/api/v1/executions/{execution_id}"):
            status, seconds = timed(client, path)
            print(f"{count} streams asked, {len(served)} open: {path} answered {status} in {seconds:.3f} s")
            assert status == 200 and seconds < 10.0, (path, status, seconds)
    finally:
        for connection in connections:
            connection.close()
        server.stop()
    assert "Traceback" not in server.output()


def test_gunicorn_refuses_to_let_streams_take_every_thread(database_url, redis_url, tmp_path):
    env = service_env(database_url, redis_url, tmp_path / "web", GUNICORN_BIND=f"127.0.0.1:{free_port()}",
                      API_TOKENS=TOKEN, GUNICORN_THREADS="4", API_SSE_MAX_STREAMS="4")
    said = refusal_to_start(env, tmp_path / "gunicorn.log")
    assert "API_SSE_MAX_STREAMS (4) must be below GUNICORN_THREADS (4)" in said
