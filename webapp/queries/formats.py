"""An execution's log records as text: one readable line each.

The same line in ``flask executions logs``, ``--follow`` and the
``logs.txt`` download, so that what a person reads is the same everywhere.
"""

from __future__ import annotations

import json
from typing import Any


#: Every character ``str.splitlines`` (and so some reader) takes as a line
#: break, written as its escape: a record is one line for any reader.
LINE_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f", "\x1c": "\\x1c",
                             "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028",
                             "\u2029": "\\u2029"})


def log_line(record: dict[str, Any], *, details: bool = False) -> str:
    """``<time>  INFO    agent     [step] agent: message`` (a record as
    :class:`~.records.LogRecordOut` dumps it), with ``details`` as JSON
    at the end when asked and present; never more than one line."""
    step = f"[{record['step']}]" if record["step"] else None
    where = " ".join(part for part in (step, record["agent_name"]) if part)
    line = (f"{record['created_at']}  {record['level'].upper():7} {record['category']:9} "
            f"{where + ': ' if where else ''}{record['message']}")
    if details and record.get("details") is not None:
        line += "  " + json.dumps(record["details"], sort_keys=True)
    return line.translate(LINE_BREAKS)
