"""StepLogger: the execution logger with the trace and the step filled in.

A runner logs as the original callers did, minus the arguments the engine
already knows: ``context.logger.log_agent_start("intent", "analysing the
goal")`` is ``execution_logger.log_agent_start(trace_id, "intent", "analysing
the goal", step=<the step>)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from webapp.execlog import ExecutionLogger, LogCategory, LogLevel, LogRecord, OperationTimer
from webapp.execlog import execution_logger as _default_logger

from .tally import AttemptLogger

Details = Mapping[str, Any] | None


class StepLogger:
    """The ExecutionLogger API bound to one trace (the execution id) and step."""

    def __init__(self, trace_id: str, step: str | None,
                 logger: ExecutionLogger | AttemptLogger | None = None) -> None:
        self.trace_id = trace_id
        self.step = step
        self._logger = _default_logger if logger is None else logger

    def log(
        self, level: LogLevel | str, category: LogCategory | str, message: str, **fields: Any
    ) -> LogRecord:
        """``ExecutionLogger.log`` with ``trace_id`` and ``step`` filled in;
        ``fields`` are its keyword arguments (agent_name, details, ...)."""
        return self._logger.log(self.trace_id, level, category, message, step=self.step, **fields)

    def debug(self, category: LogCategory | str, message: str, **fields: Any) -> LogRecord:
        return self.log(LogLevel.DEBUG, category, message, **fields)

    def info(self, category: LogCategory | str, message: str, **fields: Any) -> LogRecord:
        return self.log(LogLevel.INFO, category, message, **fields)

    def warning(self, category: LogCategory | str, message: str, **fields: Any) -> LogRecord:
        return self.log(LogLevel.WARNING, category, message, **fields)

    def error(self, category: LogCategory | str, message: str, **fields: Any) -> LogRecord:
        return self.log(LogLevel.ERROR, category, message, **fields)

    def log_workflow_start(self, message: str, roadmap_id: str | None = None,
                           details: Details = None) -> LogRecord:
        return self._logger.log_workflow_start(self.trace_id, self.step, message, roadmap_id, details)

    def log_workflow_complete(self, message: str, duration_ms: float | None = None,
                              roadmap_id: str | None = None, details: Details = None) -> LogRecord:
        return self._logger.log_workflow_complete(self.trace_id, self.step, message, duration_ms,
                                                  roadmap_id, details)

    def log_agent_start(self, agent_name: str, message: str, concept_id: str | None = None,
                        details: Details = None) -> LogRecord:
        return self._logger.log_agent_start(self.trace_id, agent_name, message, concept_id, details,
                                            step=self.step)

    def log_agent_complete(self, agent_name: str, message: str, duration_ms: float | None = None,
                           concept_id: str | None = None, details: Details = None) -> LogRecord:
        return self._logger.log_agent_complete(self.trace_id, agent_name, message, duration_ms,
                                               concept_id, details, step=self.step)

    def log_agent_error(self, agent_name: str, message: str, error: Any,
                        concept_id: str | None = None, details: Details = None) -> LogRecord:
        return self._logger.log_agent_error(self.trace_id, agent_name, message, error, concept_id,
                                            details, step=self.step)

    def log_tool_call(self, agent_name: str, tool_name: str, message: str,
                      duration_ms: float | None = None, details: Details = None) -> LogRecord:
        return self._logger.log_tool_call(self.trace_id, agent_name, tool_name, message, duration_ms,
                                          details, step=self.step)

    def log_retry_start(self, message: str, roadmap_id: str | None = None,
                        details: Details = None) -> LogRecord:
        return self._logger.log_retry_start(self.trace_id, message, roadmap_id, details, step=self.step)

    def log_retry_complete(self, message: str, duration_ms: float | None = None,
                           roadmap_id: str | None = None, details: Details = None) -> LogRecord:
        return self._logger.log_retry_complete(self.trace_id, message, duration_ms, roadmap_id, details,
                                               step=self.step)

    def timed_operation(self, category: LogCategory | str, operation_name: str,
                        agent_name: str | None = None, concept_id: str | None = None,
                        roadmap_id: str | None = None) -> AbstractContextManager[OperationTimer]:
        """As ``ExecutionLogger.timed_operation``: "<operation> started", then
        "<operation> completed" with its duration, or "<operation> failed:
        <error>" and re-raise."""
        return self._logger.timed_operation(self.trace_id, category, operation_name, agent_name,
                                            concept_id, roadmap_id, step=self.step)
