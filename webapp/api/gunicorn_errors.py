"""gunicorn's own error answers in the API's one error shape.

A request gunicorn cannot parse (a broken request line, a header over its
limits, broken chunked framing) never reaches Flask: gunicorn answers it
itself, with an HTML page. :func:`install` makes those answers RFC 9457
problem documents, like every other error of the API.

gunicorn has no public hook for this: every worker's ``handle_error`` ends
in ``gunicorn.util.write_error(sock, status_int, reason, mesg)``, which this
module replaces (``docker/gunicorn.conf.py`` calls :func:`install` in the
master, so every worker inherits it). The test that fails when gunicorn
changes that call is ``tests/api/test_gunicorn_errors.py``.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

from .errors import PROBLEM_CONTENT_TYPE, SERVER_ERROR_DETAIL, problem_document


def problem_bytes(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying a problem document; the
    connection closes after it, as gunicorn's own error answers do."""
    detail = message or (SERVER_ERROR_DETAIL if status >= 500 else reason)
    body = json.dumps(problem_document(status, reason, detail)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``, answering a problem document."""
    util.write_nonblock(sock, problem_bytes(status_int, reason, mesg))


def install() -> None:
    """Make gunicorn answer its own errors as problem documents."""
    util.write_error = write_problem
