"""Input an attacker would try gets a 4xx problem naming what is wrong, never
a 500: deep JSON nesting in any body, NUL characters and lone surrogates in
any string that reaches PostgreSQL (bodies, headers, query parameters),
numbers Python or PostgreSQL cannot hold, and extreme timestamps and
offsets in cursors and filters. The app runs on PostgreSQL with errors
answered as in production (not re-raised to the test)."""

from __future__ import annotations

import base64
import io
import json
import uuid

import pytest

from .test_executions import assert_problem

DEEP = "[" * 100_000 + "]" * 100_000  # Python's parser raised RecursionError
TOO_DEEP = "[" * 65 + "]" * 65  # parses, but deeper than any input needs
AT_THE_LIMIT = "[" * 62 + "]" * 62  # with the body and "input": 64 levels
NUL_ID = "a\x00"


@pytest.fixture
def hostile(app_factory):
    app = app_factory(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    return app.test_client()


def post_json(client, path: str, body: str | bytes, **headers: str):
    data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    return client.post(path, data=data, content_type="application/json", headers=headers)


def start_body(input_json: str, workflow: str = '"synthetic-emit"') -> str:
    return f'{{"workflow": {workflow}, "input": {input_json}}}'


def cursor(created_at: str, item_id: str | None = None) -> str:
    raw = json.dumps([created_at, item_id or str(uuid.uuid4())]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "path, body, status, fragment",
    [
        ("/api/v1/executions", start_body(f'{{"a": {DEEP}}}'), 400, "nested deeper than 64 levels"),
        ("/api/v1/executions", start_body(f'{{"a": {TOO_DEEP}}}'), 400, "input.a.0.0.0"),
        ("/api/v1/logs", f'{{"records": {DEEP}}}', 400, "nested deeper than 64 levels"),
        ("/api/v1/logs", '{"records": [{"trace_id": "t", "level": "info", "category": "api", "message": "m", '
                         f'"details": {{"d": {TOO_DEEP}}}}}]}}', 400, "records.0.details.d.0.0"),
        ("/api/v1/tokens", f'{{"name": {DEEP}}}', 400, "nested deeper than 64 levels"),
        ("/api/v1/executions", start_body('{"n": ' + "1" * 5000 + "}"), 400,
         "a number in it has more than 4300 digits"),
        ("/api/v1/executions", start_body('{"n": 1e400}'), 400, "the number 1e400 is beyond the range"),
        ("/api/v1/executions", start_body('{"n": NaN}'), 400, "NaN is not a JSON value"),
        ("/api/v1/logs", '{"records": [{"trace_id": "t", "level": "info", "category": "api", "message": "m", '
                         '"duration_ms": -Infinity}]}', 400, "-Infinity is not a JSON value"),
        ("/api/v1/executions", start_body('{"x": "a\\u0000b"}'), 422, "x holds a NUL character"),
        ("/api/v1/executions", start_body('{"a\\u0000": 1}'), 422, "has a name that holds a NUL character"),
        ("/api/v1/executions", start_body('{"x": ["ok", {"y": "\\ud800"}]}'), 422,
         "x.1.y holds a lone surrogate (U+D800)"),
        ("/api/v1/executions", start_body('{"\\udfff": "x"}'), 422, "lone surrogate (U+DFFF)"),
        ("/api/v1/executions", start_body("{}", '"emit\\u0000"'), 400,
         "workflow (json): Must not hold a NUL character"),
        ("/api/v1/executions", start_body("{}", '"\\ud800"'), 400, "Must not hold a lone surrogate"),
        ("/api/v1/tokens", '{"name": "a\\u0000b"}', 400, "name (json): Must not hold a NUL character"),
        ("/api/v1/executions", '{"workflow": "synthetic-emit", "input": {}}'.encode("utf-16"), 400,
         "it is not UTF-8"),
        ("/api/v1/executions", '{"workflow": "synthetic-emit", "input": {}, "workflow": "roadmap"}', 400,
         "the name 'workflow' appears twice in one object"),
        ("/api/v1/logs", '{"records": [{"trace_id": "t", "level": "info", "category": "api", "message": "m", '
                         '"details": {"user": "a", "user": "admin"}}]}', 400,
         "the name 'user' appears twice in one object"),
    ],
    ids=["deep-input", "input-65-levels", "deep-logs", "details-65-levels", "deep-token", "5000-digits",
         "1e400", "nan", "minus-infinity", "nul-in-input", "nul-in-input-key", "surrogate-in-input",
         "surrogate-in-input-key", "nul-in-workflow", "surrogate-in-workflow", "nul-in-token-name", "utf-16",
         "duplicate-name", "duplicate-name-in-details"],
)
def test_a_hostile_json_body_gets_a_4xx_problem(hostile, db_engine, path, body, status, fragment):
    with db_engine.connect() as connection:
        before = connection.exec_driver_sql("SELECT count(*) FROM executions").scalar()
    assert_problem(post_json(hostile, path, body), status, fragment)
    with db_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM executions").scalar() == before


def test_nesting_up_to_the_limit_is_taken(hostile):
    response = post_json(hostile, "/api/v1/executions", start_body(f'{{"a": {AT_THE_LIMIT}}}'))
    assert response.status_code == 202, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers, fragment",
    [
        ({"Idempotency-Key": "a\x00b"}, "Idempotency-Key (headers): Must not hold a NUL character"),
    ],
)
def test_a_hostile_header_gets_a_4xx_problem(hostile, headers, fragment):
    response = post_json(hostile, "/api/v1/executions", start_body("{}"), **headers)
    assert_problem(response, 400, fragment)


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("q=a%00b", "q (query): Must not hold a NUL character"),
        ("step=%00", "step (query): Must not hold a NUL character"),
        ("agent_name=x%00", "agent_name (query): Must not hold a NUL character"),
    ],
)
def test_a_nul_in_a_log_filter_gets_a_400(hostile, execution_id, query, fragment):
    assert_problem(hostile.get(f"/api/v1/executions/{execution_id}/logs?{query}"), 400, fragment)


@pytest.mark.parametrize("path, query, name", [
    ("/api/v1/executions", "limit=1&limit=1000", "limit"),
    ("/api/v1/executions", "status=failed&workflow=roadmap&status=succeeded", "status"),
    ("/api/v1/executions/{id}/logs", "level=error&level=debug", "level"),
    ("/api/v1/executions/{id}/logs.ndjson", "q=a&q=b", "q"),
])
def test_a_parameter_that_takes_one_value_given_twice_gets_a_400(hostile, execution_id, path, query, name):
    """Not read as its first value: a proxy or cache reading another would
    see a different request."""
    response = hostile.get(f"{path.format(id=execution_id)}?{query}")
    body = assert_problem(response, 400, f"{name} (query): Given more than once")
    assert list(body["errors"]["query"]) == [name]


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("workflow=a%00b", "workflow (query): Not a workflow name."),
        ("workflow=roadmap%20and%20more", "workflow (query): Not a workflow name."),  # matched its start only
        (f"cursor={cursor('9999-12-31T23:59:59.999999-05:00')}", "is not a cursor of this listing"),
        (f"cursor={cursor('0001-01-01T00:00:00+01:00')}", "is not a cursor of this listing"),
        (f"cursor={cursor('2026-01-01T00:00:00+00:00', NUL_ID)}", "is not a cursor of this listing"),
        ("created_after=9999-12-31T23:59:59-23:59", "created_after (query): Out of range."),
        ("created_before=0001-01-01T00:00:00%2B23:59", "created_before (query): Out of range."),
    ],
    ids=["nul-in-workflow", "workflow-prefix", "cursor-past-9999", "cursor-before-year-1", "cursor-nul-id",
         "created-after-past-9999", "created-before-before-year-1"],
)
def test_a_hostile_listing_query_gets_a_400(hostile, query, fragment):
    assert_problem(hostile.get(f"/api/v1/executions?{query}"), 400, fragment)


@pytest.mark.parametrize("moment", ["2026-01-01T00:00:00+20:00", "2026-01-01T00:00:00-23:59",
                                    "2026-01-01T00:00:00+05:30:15.5", "0001-01-01T00:00:00+00:00",
                                    "9999-12-31T23:59:59.999999+00:00"])
def test_a_cursor_at_an_extreme_time_or_offset_is_a_position(hostile, moment):
    response = hostile.get(f"/api/v1/executions?cursor={cursor(moment)}")
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_cursor_with_an_offset_postgresql_refuses_still_pages(hostile, rows):
    """A cursor is a position: with +20:00 (beyond PostgreSQL's 15:59) it is
    the same moment in UTC, as created_after already was."""
    workflow = f"far-east-{uuid.uuid4().hex[:8]}"
    ids = [rows.execution(workflow=workflow) for _ in range(2)]
    newest = hostile.get(f"/api/v1/executions?workflow={workflow}&limit=1").json
    created_at, item_id = json.loads(base64.urlsafe_b64decode(newest["next"] + "=="))
    from datetime import datetime, timedelta, timezone

    far_east = datetime.fromisoformat(created_at).astimezone(timezone(timedelta(hours=20))).isoformat()
    rest = hostile.get(f"/api/v1/executions?workflow={workflow}&cursor={cursor(far_east, item_id)}")
    assert rest.status_code == 200, rest.get_data(as_text=True)
    assert [e["id"] for e in newest["items"] + rest.json["items"]] == ids[::-1]


@pytest.mark.parametrize(
    "header",
    [f"{2**63}:", "99999999999999999999:", "9" * 5000 + ":", "\u00b2:", "\u0661:"],
    ids=["2^63", "20-digits", "5000-digits", "superscript-two", "arabic-one"],
)
def test_a_last_event_id_beyond_a_bigint_gets_a_400(hostile, execution_id, header):
    response = hostile.get(f"/api/v1/executions/{execution_id}/events", headers={"Last-Event-ID": header})
    assert_problem(response, 400, "is not a position of this stream")


def raw_cursor(created_at, item_id) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, item_id]).encode()).decode().rstrip("=")


@pytest.mark.parametrize("item_id", [5, True, [1], {}, 1.5, None])
@pytest.mark.parametrize("path", ["/api/v1/executions", "/ui/"])
def test_a_cursor_whose_id_is_not_text_gets_a_400(hostile, path, item_id):
    response = hostile.get(f"{path}?cursor={raw_cursor('2024-01-01T00:00:00+00:00', item_id)}")
    assert response.status_code == 400
    if path.startswith("/api/"):
        assert response.json["type"] == "urn:webapp:problem:bad-cursor"


@pytest.mark.parametrize("query, fragment", [
    ("q=%ED%A0%80", "q (query): Must be UTF-8 text."),
    ("step=%FF", "step (query): Must be UTF-8 text."),
    ("agent_name=%C0%80", "agent_name (query): Must be UTF-8 text."),
])
def test_a_query_that_is_not_utf8_gets_a_400_not_a_replaced_search(hostile, execution_id, query, fragment):
    for suffix in ("logs", "logs.ndjson", "logs.txt"):
        assert_problem(hostile.get(f"/api/v1/executions/{execution_id}/{suffix}?{query}"), 400, fragment)


def test_a_timestamp_ending_in_a_nul_gets_a_400(hostile):
    assert_problem(hostile.get("/api/v1/executions?created_after=2024-01-01T00:00:00Z%00"), 400,
                   "created_after (query): Must not hold a NUL character")


def test_a_path_that_is_not_utf8_gets_a_400(hostile):
    # PATH_INFO as a WSGI server makes it: the raw bytes as latin-1 (the
    # test client would decode them with replacement first)
    raw_path = "/api/v1/tokens/\xed\xa0\x80"
    response = hostile.delete("/api/v1/tokens/x", environ_overrides={"PATH_INFO": raw_path})
    assert_problem(response, 400, "path (path): Must be UTF-8 text.")


class ChunkMissingTerminator(Exception):
    """As gunicorn raises it (its ParseException is neither an OSError nor
    a ValueError, which werkzeug's stream would turn into a 400 itself)."""


class _BrokenChunks(io.RawIOBase):
    """A request stream as gunicorn gives one whose chunked framing is broken."""

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return 0

    def readinto(self, buffer):
        raise ChunkMissingTerminator("b'zz'")


def test_a_body_whose_framing_is_broken_gets_a_400(hostile):
    response = hostile.post("/api/v1/executions", input_stream=_BrokenChunks(),
                            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                            environ_overrides={"wsgi.input_terminated": True})
    assert_problem(response, 400, "the body could not be read: ChunkMissingTerminator")


def test_a_streamed_body_over_the_cap_gets_a_413_not_a_cut_body(hostile, app_factory):
    limit = hostile.application.config["MAX_CONTENT_LENGTH"]
    body = b'{"workflow": "synthetic-emit", "input": {"a": "' + b"a" * limit + b'"}}'
    response = hostile.post("/api/v1/executions", input_stream=io.BytesIO(body),
                            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                            environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("path", ["/api/v1/runners?zzz=1", "/api/v1/runners?limit=-1",
                                  "/api/v1/tokens?zzz=%00"])
def test_an_operation_without_parameters_refuses_any(hostile, path):
    assert_problem(hostile.get(path), 400, "(query): Unknown field.")
