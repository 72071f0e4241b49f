"""The text of a request's URL: UTF-8, or a 400.

Werkzeug decodes a query string and a path with replacement: ``%ED%A0%80``
(a lone surrogate, as UTF-8 bytes) or ``%FF`` became U+FFFD and a search ran
on text the client never sent. Every request of the API and the pages is
checked here, before any view reads its parameters. (NUL characters, which
decode as they are, are refused by each parameter's schema, which names
what the parameter is.)
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Flask, Response, request

from .errors import invalid_request


#: The WSGI key of the path: its bytes, decoded as latin-1 (PEP 3333).
WSGI_PATH = "PATH_INFO"


def init_app(app: Flask) -> None:
    app.before_request(check_request_text)


def check_request_text() -> Response | None:
    """``before_request``: None to go on, or a 400 naming the parameter."""
    errors: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True,
                                 encoding="latin-1"):
        message = _text_problem(value.encode("latin-1"))
        if message is not None:
            errors[_printable(name)] = [message]
    if errors:
        return invalid_request({"query": errors})
    path = request.environ.get(WSGI_PATH, "")
    message = _text_problem(path.encode("latin-1", "replace"))
    if message is not None:
        return invalid_request({"path": {"path": [message]}})
    return None


def _text_problem(raw: bytes) -> str | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "Must be UTF-8 text."
    return None


def _printable(name: str) -> str:
    """A parameter's name as the client sent it, safe to echo."""
    return name.encode("latin-1").decode("utf-8", "replace").replace("\x00", "\\0")
