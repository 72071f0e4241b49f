"""``GET /api/v1/executions/<id>/logs.ndjson`` and ``logs.txt``: the whole
log of an execution as a file, every record in ``(created_at, id)`` order,
with the filters of the listing.

The body is streamed in keyset pages of ``PAGE_RECORDS``, each read in an
app context (and so a database session) of its own that is closed before
the page is sent: memory holds one page whatever the log's size, and no
connection is held while the client reads. A record that lands during the
download with a place the download has already passed is not in it (as for
the listing's pages); download again to get it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, current_app
from flask.typing import ResponseReturnValue

from .blueprint import Blueprint
from ..queries.formats import log_line
from ..queries.reads import LogFilter, Position, get_execution, logs_after
from ..queries.records import LogRecordOut
from .schemas import LogFilterArgs

bp = Blueprint("downloads", __name__, url_prefix="/api/v1", description="Whole logs, as files.")

#: Records read (and held) at once.
PAGE_RECORDS = 1000
_record_schema = LogRecordOut()


def _ndjson(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"


def _text(record: dict[str, Any]) -> str:
    return log_line(record, details=True) + "\n"


FORMATS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "ndjson": ("application/x-ndjson", _ndjson),
    "txt": ("text/plain", _text),
}


@bp.get("/executions/<uuid:execution_id>/logs.ndjson")
@bp.requires("read")
@bp.arguments(LogFilterArgs, location="query")
@bp.response(200, {"type": "string"}, content_type="application/x-ndjson",
             description="Every record, one JSON object (as the listing shows it) a line, in order.")
@bp.problem(404, "No such execution.")
def logs_ndjson(args: dict[str, Any], execution_id: uuid.UUID) -> ResponseReturnValue:
    """The whole log as newline-delimited JSON."""
    return _download(execution_id, LogFilter(**args), "ndjson")


@bp.get("/executions/<uuid:execution_id>/logs.txt")
@bp.requires("read")
@bp.arguments(LogFilterArgs, location="query")
@bp.response(200, {"type": "string"}, content_type="text/plain",
             description="Every record as a readable line (details as JSON at its end), in order.")
@bp.problem(404, "No such execution.")
def logs_txt(args: dict[str, Any], execution_id: uuid.UUID) -> ResponseReturnValue:
    """The whole log as text lines."""
    return _download(execution_id, LogFilter(**args), "txt")


def _download(execution_id: uuid.UUID, log_filter: LogFilter, kind: str) -> Response:
    trace_id = str(get_execution(execution_id).id)
    mimetype, encode = FORMATS[kind]
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    body = (encode(record) for record in records(app, trace_id, log_filter))
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="execution-{execution_id}.{kind}"',
        "X-Accel-Buffering": "no",
    })


def records(app: Flask, trace_id: str, log_filter: LogFilter,
            page_records: int = PAGE_RECORDS) -> Iterator[dict[str, Any]]:
    """Every record of the trace that passes the filter, in order, as the
    listing dumps them, read a page at a time."""
    after: Position | None = None
    while True:
        with app.app_context():
            rows = logs_after(trace_id, after, page_records, log_filter)
            page = [_record_schema.dump(row) for row in rows]
            if rows:
                after = (rows[-1].created_at, rows[-1].id)
        yield from page
        if len(page) < page_records:
            return
