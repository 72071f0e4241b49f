"""An execution's log records as text: one readable line each.

The same line in ``flask executions logs``, ``--follow`` and the
``logs.txt`` download, so that what a person reads is the same everywhere.
"""

from __future__ import annotations

import json
from typing import Any


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
    return line.replace("\r", "\\r").replace("\n", "\\n")
