"""What a client may send that PostgreSQL cannot store, found before it is
sent there.

PostgreSQL refuses NUL characters in ``text`` and in JSON, and lone UTF-16
surrogates (``"\\ud800"`` in a JSON string) cannot be encoded as UTF-8 at
all: either one reaching a query or an insert was a 500 (a ``DataError`` or
a ``UnicodeEncodeError``). Values from clients that hold them are refused,
naming where they are; the execution logger repairs them instead
(``webapp.execlog.record``), because a log record must not be lost.

JSON is also bounded in depth: :data:`MAX_JSON_DEPTH` levels is far more
than any real input needs and far below what would exhaust Python's stack
when the value is encoded again (about 1,000 levels) or PostgreSQL's.
"""

from __future__ import annotations

import re
from typing import Any

#: The deepest nesting a JSON value from a client may have (the outermost
#: object or array is level 1).
MAX_JSON_DEPTH = 64

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """What in ``text`` PostgreSQL cannot store, described; None if nothing."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    return "a NUL character" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"


def json_problem(value: Any, *, check_text: bool = True,
                 max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """The first place in a JSON value that cannot be stored, as ``(path,
    what is wrong)``, or None. The path is dotted (``steps.2.name``; ``""``
    for the value itself). With ``check_text`` false only the depth counts.

    Iterative, so that a value too deep to encode is still measured."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, (dict, list)) and len(path) >= max_depth:
            return _dotted(path), f"nested deeper than {max_depth} levels"
        if isinstance(item, str):
            what = unstorable(item) if check_text else None
            if what:
                return _dotted(path), f"holds {what}"
        elif isinstance(item, dict):
            for key, child in item.items():
                what = unstorable(key) if check_text and isinstance(key, str) else None
                if what:
                    return _dotted((*path, key)), f"has a name that holds {what}"
                stack.append(((*path, key), child))
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
    return None


def _dotted(path: tuple[Any, ...]) -> str:
    text = ".".join(str(part) for part in path)
    return text if len(text) <= 80 else f"{text[:77]}..."
