"""AttemptLogger: the execution logger of one run, which tags and counts.

A run of an execution is one attempt (``Execution.attempts`` once the run
has claimed it: 1, then one more per resume). Every record the run logs,
the engine's and its runners', goes through the run's AttemptLogger: it
carries ``attempt=`` and is counted. The count goes into
``execution_log_counts`` with the final status (so an execution is never
over without one); then the logger is flushed and the count is stored again
with the records
this process dropped for good (``ExecutionLogger.dropped_for``); the API
compares both with what was stored (:mod:`webapp.api.completeness`).

Records logged for the execution by anything else (``POST /api/v1/logs``,
the request that resumes it, the sweep that fails it as ``worker_lost``)
carry no attempt and are not counted: they are "from elsewhere".
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from webapp.execlog import ExecutionLogger, LogRecord, OperationTimer

from ..extensions import db
from ..models import ExecutionLogCount

log = logging.getLogger(__name__)

#: Seconds a run waits for its records to leave the process before it
#: counts what was dropped.
REPORT_FLUSH_TIMEOUT = 5.0


class AttemptLogger:
    """The ExecutionLogger API, as the original callers call it (the trace
    first), for one attempt: every call adds ``attempt=`` and counts the
    record it logs. Runners may log from threads of their own, so the count
    is taken under a lock."""

    def __init__(self, logger: ExecutionLogger, attempt: int) -> None:
        self._logger = logger
        self.attempt = attempt
        self._emitted = 0
        self._lock = threading.Lock()

    @property
    def emitted(self) -> int:
        """Records logged through this logger so far."""
        with self._lock:
            return self._emitted

    def _count(self, records: int = 1) -> None:
        with self._lock:
            self._emitted += records

    def _logged(self, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LogRecord:
        record: LogRecord = method(*args, attempt=self.attempt, **kwargs)
        self._count()  # not reached when log() refused its input (ValueError): nothing was logged
        return record

    def log(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log, args, kwargs)

    def debug(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.debug, args, kwargs)

    def info(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.info, args, kwargs)

    def warning(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.warning, args, kwargs)

    def error(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.error, args, kwargs)

    def log_workflow_start(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_workflow_start, args, kwargs)

    def log_workflow_complete(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_workflow_complete, args, kwargs)

    def log_agent_start(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_agent_start, args, kwargs)

    def log_agent_complete(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_agent_complete, args, kwargs)

    def log_agent_error(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_agent_error, args, kwargs)

    def log_tool_call(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_tool_call, args, kwargs)

    def log_retry_start(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_retry_start, args, kwargs)

    def log_retry_complete(self, *args: Any, **kwargs: Any) -> LogRecord:
        return self._logged(self._logger.log_retry_complete, args, kwargs)

    @contextmanager
    def timed_operation(self, *args: Any, **kwargs: Any) -> Iterator[OperationTimer]:
        """Two records: "<operation> started" as the block is entered, and
        "completed" or "failed" as it leaves, however it leaves."""
        with self._logger.timed_operation(*args, attempt=self.attempt, **kwargs) as timer:
            self._count()
            try:
                yield timer
            finally:
                self._count()

    def count_row(self, execution_id: uuid.UUID, still_to_log: int = 0) -> ExecutionLogCount:
        """The attempt's count as it stands, plus the ``still_to_log`` records
        the run logs once the commit is done (for the session of the run's
        end, so that the execution is never over without one: the verdict
        would say the run never reported)."""
        dropped = self._logger.dropped_for(str(execution_id), self.attempt)
        return ExecutionLogCount(execution_id=execution_id, attempt=self.attempt,
                                 emitted=self.emitted + still_to_log, dropped=dropped)

    def report(self, execution_id: uuid.UUID, flush_timeout: float) -> None:
        """Flush this process's logger, then store the attempt's count and
        the records the process dropped for good (committed). A failure to
        store is logged, not raised: the verdict then says the run did not
        report, which is the truth."""
        self._logger.flush(timeout=flush_timeout)
        dropped = self._logger.dropped_for(str(execution_id), self.attempt)
        try:
            db.session.rollback()  # whatever the run left; the count goes in a transaction of its own
            db.session.merge(ExecutionLogCount(execution_id=execution_id, attempt=self.attempt,
                                               emitted=self.emitted, dropped=dropped))  # final figures
            db.session.commit()
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("execution %s: the log count of attempt %s was not stored: %s",
                        execution_id, self.attempt, exc)
