"""The buffered execution logger.

    from webapp.execlog import execution_logger, LogLevel, LogCategory

    execution_logger.info(trace_id, LogCategory.AGENT, "intent analysed",
                          agent_name="intent", details={"topic": "python"})
"""

from . import tables
from .constants import LogCategory, LogLevel
from .extension import ExecLog, close_all, current_logger, execlog, execution_logger, start_all
from .logger import ExecutionLogger, OperationTimer
from .record import LogRecord

__all__ = [
    "ExecLog",
    "ExecutionLogger",
    "LogCategory",
    "LogLevel",
    "LogRecord",
    "OperationTimer",
    "close_all",
    "current_logger",
    "execlog",
    "execution_logger",
    "start_all",
    "tables",
]
