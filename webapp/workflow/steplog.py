"""StepLogger: the execution logger with the trace and the step filled in.

A runner logs as the original callers did, minus the arguments the engine
already knows: ``context.logger.log_agent_start("intent", "analysing the
goal")`` is ``execution_logger.log_agent_start(trace_id, "intent", "analysing
the goal")`` with ``step`` set on the record. ExecutionLogger's helpers take no
``step`` argument, so each helper here builds the same record (level, category,
details) through ``ExecutionLogger.log``, which does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from webapp.execlog import ExecutionLogger, LogCategory, LogLevel, LogRecord, OperationTimer
from webapp.execlog import execution_logger as _default_logger

Details = Mapping[str, Any] | None


def _merge(first: dict[str, Any], details: Details) -> dict[str, Any]:
    return {**first, **details} if details else first


class StepLogger:
    """The ExecutionLogger API bound to one trace (the execution id) and step."""

    def __init__(self, trace_id: str, step: str | None, logger: ExecutionLogger | None = None) -> None:
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
        return self.info(LogCategory.WORKFLOW, message, roadmap_id=roadmap_id, details=details)

    def log_workflow_complete(self, message: str, duration_ms: float | None = None,
                              roadmap_id: str | None = None, details: Details = None) -> LogRecord:
        return self.info(LogCategory.WORKFLOW, message, duration_ms=duration_ms,
                         roadmap_id=roadmap_id, details=details)

    def log_agent_start(self, agent_name: str, message: str, concept_id: str | None = None,
                        details: Details = None) -> LogRecord:
        return self.info(LogCategory.AGENT, message, agent_name=agent_name,
                         concept_id=concept_id, details=details)

    def log_agent_complete(self, agent_name: str, message: str, duration_ms: float | None = None,
                           concept_id: str | None = None, details: Details = None) -> LogRecord:
        return self.info(LogCategory.AGENT, message, agent_name=agent_name, duration_ms=duration_ms,
                         concept_id=concept_id, details=details)

    def log_agent_error(self, agent_name: str, message: str, error: Any,
                        concept_id: str | None = None, details: Details = None) -> LogRecord:
        return self.error(LogCategory.AGENT, message, agent_name=agent_name, concept_id=concept_id,
                          details=_merge({"error": error}, details))

    def log_tool_call(self, agent_name: str, tool_name: str, message: str,
                      duration_ms: float | None = None, details: Details = None) -> LogRecord:
        return self.debug(LogCategory.TOOL, message, agent_name=agent_name, duration_ms=duration_ms,
                          details=_merge({"tool_name": tool_name}, details))

    def log_retry_start(self, message: str, roadmap_id: str | None = None,
                        details: Details = None) -> LogRecord:
        return self.info(LogCategory.RETRY, message, roadmap_id=roadmap_id, details=details)

    def log_retry_complete(self, message: str, duration_ms: float | None = None,
                           roadmap_id: str | None = None, details: Details = None) -> LogRecord:
        return self.info(LogCategory.RETRY, message, duration_ms=duration_ms,
                         roadmap_id=roadmap_id, details=details)

    @contextmanager
    def timed_operation(self, category: LogCategory | str, operation_name: str,
                        agent_name: str | None = None, concept_id: str | None = None,
                        roadmap_id: str | None = None) -> Iterator[OperationTimer]:
        """As ``ExecutionLogger.timed_operation``: "<operation> started", then
        "<operation> completed" with its duration, or "<operation> failed:
        <error>" and re-raise."""
        where = {"agent_name": agent_name, "concept_id": concept_id, "roadmap_id": roadmap_id}
        self.info(category, f"{operation_name} started", **where)
        timer = OperationTimer()
        try:
            yield timer
        except GeneratorExit:
            raise
        except BaseException as exc:
            self.error(category, f"{operation_name} failed: {str(exc)[:100]}",
                       duration_ms=timer.elapsed_ms,
                       details=_merge({"error": str(exc)}, timer.details), **where)
            raise
        self.info(category, f"{operation_name} completed", duration_ms=timer.elapsed_ms,
                  details=timer.details or None, **where)
