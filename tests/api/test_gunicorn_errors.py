"""Requests gunicorn cannot parse get the API's problem document, not
gunicorn's HTML page (webapp.api.gunicorn_errors)."""

from __future__ import annotations

import inspect
import json
import socket

import pytest
from gunicorn import util
from gunicorn.workers import base

from .test_gunicorn import served  # noqa: F401  (the fixture)


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip()
               for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


HOST = b"Host: 127.0.0.1\r\n"


@pytest.mark.parametrize("request_bytes, status, fragment", [
    (b"GARBAGE\r\n\r\n", 400, "Invalid Request Line"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414, "line is too large"),
    (b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
     "Error parsing headers"),
    (b"GET /healthz HTTP/9.9\r\n" + HOST + b"\r\n", 400, "Invalid HTTP Version"),
    (b"POST /api/v1/logs HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n", 400, "transfer-encoding"),
    (b"GET /healthz HTTP/1.1\r\n" + HOST + b"Bad Header\xff: x\r\n\r\n", 400, "header"),
], ids=["request-line", "long-request-line", "large-header", "http-version", "transfer-coding",
        "header-name"])
def test_a_request_gunicorn_cannot_parse_gets_a_problem_document(
        served, request_bytes, status, fragment):  # noqa: F811
    client, _ = served
    answered, headers, body = raw_exchange(client.port, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"] == "about:blank"
    assert fragment.lower() in problem["detail"].lower(), problem


def test_gunicorn_still_answers_its_errors_through_write_error():
    """The replaced function is what every worker's error path calls, with
    the arguments webapp.api.gunicorn_errors.write_problem takes: when a
    gunicorn release changes either, this fails."""
    assert "util.write_error(client, status_int, reason, mesg)" in inspect.getsource(base.Worker.handle_error)
    assert util.write_error.__module__ == "gunicorn.util"  # this process never installs the replacement
    assert list(inspect.signature(util.write_error).parameters) == ["sock", "status_int", "reason", "mesg"]
