"""Schema-driven fuzzing of the real server: schemathesis makes requests from
the OpenAPI document (valid ones, invalid ones, and sequences that follow
the links it infers between operations) and sends them to gunicorn, with
the project's config, on PostgreSQL. No request may get a server error, or
put a traceback in gunicorn's log, and every answer must have the
documented shape and content type.

schemathesis' own strategies are extended (its ``flatmap_*`` hooks) with
what an attacker sends: NUL characters and lone surrogates in strings,
nesting deeper than the API reads, numbers beyond a double, extreme
timestamps and offsets (in filters, and inside otherwise valid cursors),
event ids beyond a BIGINT. A good share of the generated requests (a third
to a half of those with a body or parameters) carry one.

Bounded (``EXAMPLES`` per operation and mode, ``STATEFUL_EXAMPLES``
sequences, derandomized) so that it takes about a minute and finds the same
things on every run. The server runs on a broker no worker reads: a request
that does start something only queues it, and an event stream ends after
``API_SSE_MAX_SECONDS`` (1 s here). (schemathesis' pytest plugin does not
run under pytest 9 yet, so its strategies are driven by hypothesis here.)
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from ..conftest import QUEUE_KEYS, SPARE_REDIS_URL, service_env
from ..support.processes import free_port, wait_for_port
from .test_gunicorn import gunicorn

EXAMPLES = 30
STATEFUL_EXAMPLES = 30
TOKEN = "fuzz-token-0123456789abcdef0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

# -- what an attacker sends ------------------------------------------------------

TEXT = ["\x00", "a\x00b", "\x00" * 300, "\ud800", "\udfff", "x\ud83d", "\udc00\ud800", "\uffff", "\U0010ffff",
        "'; DROP TABLE executions; --", "%_\\", "x" * 5000]
#: Text an HTTP header or a query string can carry: NUL, and the bytes of a
#: lone surrogate (WTF-8), of an overlong NUL, of nothing valid at all.
#: (Within gunicorn's 4094 bytes a request line: past it gunicorn answers 414
#: itself, before the app.)
RAW_TEXT = ["\x00", "a\x00b", b"\xed\xa0\x80", b"\xc0\x80", b"\xff\xfe", b"%00", "x" * 300]
MOMENTS = ["0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999-23:59",
           "9999-12-31T23:59:59.999999+00:00", "2026-01-01T00:00:00+15:59", "2026-01-01T00:00:00+16:00",
           "2026-01-01T00:00:00-23:59", "2026-01-01T00:00:00+05:30:15.999999", "1970-01-01T00:00:00Z",
           "2026-02-30T00:00:00+00:00", "2026-01-01T24:00:00+00:00", "+275760-09-13T00:00:00Z",
           "2026-01-01T00:00:00", "2026-01-01"]
#: In a header: gunicorn itself refuses NUL and control characters there
#: (400, before the app; tests/api/test_hostile_input.py sends them in-process).
HEADER_TEXT = [b"\xed\xa0\x80", b"\xc0\x80", b"\xff\xfe", "%00", "x" * 1000, "\u00b2"]
EVENT_IDS = [f"{2**63}:", f"{2**63 - 1}:", "99999999999999999999:", "-1:", "0:" + "f" * 32, "1:%00",
             "\u00b2:", "\u0661:".encode()]


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


#: JSON values for bodies: text, nesting deeper than the API reads (and
#: near Python's stack at 900), numbers beyond a BIGINT or at a double's
#: ends, timestamps. (NaN, Infinity and 1e400 cannot be sent by the client
#: here: tests/api/test_hostile_input.py sends them as raw text.)
VALUES = [*TEXT, {"\x00": 1}, {"\ud800": "x"}, deep(65), deep(900), {"a": deep(200)}, 10**4000, -(2**64),
          2**63, 1.7976931348623157e308, 5e-324, *MOMENTS]


WORKFLOWS = ["synthetic-emit", "flaky", "roadmap"]


def cursor_at(moment: Any, item: Any = None) -> str:
    raw = json.dumps([moment, item if item is not None else str(uuid.uuid4())]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSORS = [cursor_at(moment) for moment in MOMENTS] + [
    cursor_at("2026-01-01T00:00:00+00:00", "\x00"), cursor_at(deep(50)), cursor_at(1e308)]


def hostile_for(name: str) -> st.SearchStrategy[Any]:
    """What to put in the query parameter or header ``name``."""
    if name == "cursor":
        return st.sampled_from(CURSORS + RAW_TEXT)
    if name in ("created_after", "created_before"):
        return st.sampled_from(MOMENTS + RAW_TEXT)
    if name == "Last-Event-ID":
        return st.sampled_from(EVENT_IDS + HEADER_TEXT)
    if name == "Idempotency-Key":
        return st.sampled_from(HEADER_TEXT)
    return st.sampled_from(RAW_TEXT + MOMENTS)


def one_replaced(container: dict[str, Any] | None, values: Any) -> st.SearchStrategy[dict[str, Any]]:
    """``container`` as generated, or (as often) with one entry replaced by
    a hostile value."""
    if not container:
        return st.just(container)
    keys = sorted(container)
    return st.one_of(st.just(container), st.sampled_from(keys).flatmap(
        lambda key: (values(key) if callable(values) else values).map(
            lambda value: {**container, key: value})))


def hostile_body(body: Any) -> st.SearchStrategy[Any]:
    """The body as generated, or with a hostile value at its top or one
    level down (``input`` of a start, a record of ``POST /logs``). A start
    also names a workflow that exists, often enough to reach what follows
    a start (reads, retries, streams of a real execution)."""
    if not isinstance(body, dict):
        return st.one_of(st.just(body), st.sampled_from(VALUES))
    strategies = [st.just(body), one_replaced(body, st.sampled_from(VALUES)),
                  st.sampled_from(VALUES).map(lambda value: {**body, **{"\x00key": value}})]
    if "workflow" in body:
        known = st.sampled_from(WORKFLOWS)
        strategies += [known.map(lambda name: {**body, "workflow": name, "input": {}}),
                       st.tuples(known, st.sampled_from(VALUES)).map(
                           lambda pair: {**body, "workflow": pair[0], "input": {"records": pair[1]}})]
    for key, inner in body.items():
        if isinstance(inner, dict) and inner:
            strategies.append(one_replaced(inner, st.sampled_from(VALUES)).map(
                lambda replaced, key=key: {**body, key: replaced}))
        if isinstance(inner, list) and inner and isinstance(inner[0], dict):
            strategies.append(one_replaced(inner[0], st.sampled_from(VALUES)).map(
                lambda replaced, key=key: {**body, key: [replaced, *body[key][1:]]}))
    return st.one_of(strategies)


def extend_strategies(schema: Any) -> None:
    """Register the hostile values on ``schema``'s generation (every mode)."""

    @schema.hook("flatmap_query")
    def hostile_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
        return one_replaced(query, hostile_for)

    @schema.hook("flatmap_headers")
    def hostile_headers(context: Any, headers: Any) -> st.SearchStrategy[Any]:
        chosen = {k: v for k, v in (headers or {}).items() if k in ("Idempotency-Key", "Last-Event-ID")}
        if not chosen:
            return st.just(headers)
        return one_replaced(chosen, hostile_for).map(lambda replaced: {**headers, **replaced})

    @schema.hook("flatmap_path_parameters")
    def hostile_path(context: Any, parameters: Any) -> st.SearchStrategy[Any]:
        return one_replaced(parameters, st.sampled_from([text for text in RAW_TEXT if isinstance(text, str)]))

    @schema.hook("flatmap_body")
    def hostile(context: Any, body: Any) -> st.SearchStrategy[Any]:
        return hostile_body(body)


# -- the server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = service_env(database_url, SPARE_REDIS_URL, work / "var", GUNICORN_BIND=f"127.0.0.1:{port}",
                      WEB_CONCURRENCY="2", API_TOKENS=TOKEN, API_SSE_MAX_SECONDS="1", API_SSE_HEARTBEAT="0.3",
                      API_SSE_POLL_INTERVAL="0.1", API_SSE_LOG_DELAY="0")
    server = gunicorn(env, work / "gunicorn.log").start()
    try:
        wait_for_port(port, timeout=60)
        base_url = f"http://127.0.0.1:{port}"
        schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
        extend_strategies(schema)
        yield Served(base_url, schema, server)
    finally:
        server.stop()
        redis.Redis.from_url(SPARE_REDIS_URL).delete(*QUEUE_KEYS)


class Served:
    def __init__(self, base_url: str, schema: Any, server: Any) -> None:
        self.base_url, self.schema, self.server = base_url, schema, server

    def assert_no_traceback(self) -> None:
        log = self.server.output()
        assert "Booting worker" in log, "not gunicorn's log"
        assert "Traceback" not in log and "Exception on" not in log, log[-5000:]


def takes_input(operation: Any) -> bool:
    return any(len(parameters) for parameters in (operation.path_parameters, operation.query,
                                                  operation.headers)) or bool(list(operation.body))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_makes_the_server_fail(served_api, mode):
    operations = [result.ok() for result in served_api.schema.get_all_operations()]
    assert len(operations) == 16
    for operation in operations:
        if operation.path == "/readyz":
            continue  # takes no input, and is meant to answer 503 here: no worker reads this broker
        if mode is GenerationMode.NEGATIVE and not takes_input(operation):
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @SETTINGS
        def call(case: Any) -> None:
            case.call_and_validate(base_url=served_api.base_url, headers=AUTH, checks=CHECKS, timeout=30)

        call()
    served_api.assert_no_traceback()


def test_no_sequence_of_requests_makes_the_server_fail(served_api):
    """Sequences along the links schemathesis infers (a token made, then
    revoked; an execution started, then read, retried, followed)."""
    base = served_api.schema.as_state_machine()
    failures: list[str] = []
    steps: list[str] = []

    class Sequences(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": served_api.base_url, "headers": AUTH, "timeout": 30}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            steps.append(f"{case.method} {case.path} {response.status_code}")
            if case.path == "/readyz":
                return
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except FailureGroup as exc:  # kept, not raised: see below
                failures.append(f"{case.method} {case.path}: {exc}")

    # Failures are collected rather than raised: hypothesis would replay a
    # failing sequence against a server that kept the first run's state (a
    # token name now taken, an execution now there), and take the difference
    # for a flaky strategy. For the same reason a run may end early with
    # Flaky, as schemathesis' own runner allows; it must have gone far enough.
    try:
        Sequences.run(settings=settings(SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=8,
                                        phases=[Phase.generate]))
    except Flaky:
        pass
    assert failures == [], "\n\n".join(failures)
    assert len(steps) >= 30 and len({step.rsplit(" ", 1)[0] for step in steps}) >= 6, steps
    served_api.assert_no_traceback()
