"""The log levels and categories of the original API.

Both are ``StrEnum`` so that ``LogLevel.INFO == "info"``: callers may pass the
constant or its string value, in any case.
"""

from __future__ import annotations

from enum import StrEnum


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogCategory(StrEnum):
    WORKFLOW = "workflow"
    AGENT = "agent"
    TOOL = "tool"
    DATABASE = "database"
    API = "api"
    RETRY = "retry"


#: Severity order, used for "minimum level" filters.
LEVEL_RANK: dict[str, int] = {
    LogLevel.DEBUG: 10,
    LogLevel.INFO: 20,
    LogLevel.WARNING: 30,
    LogLevel.ERROR: 40,
}
