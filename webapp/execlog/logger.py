"""ExecutionLogger: the public, caller-compatible API of the execution log.

Every method is synchronous and thread-safe, and returns as soon as the record
is in the in-process buffer; none opens a database connection or waits on the
network. ``task_id=`` is accepted everywhere as another name for
``trace_id`` (the original system's name for it), and every helper takes a
keyword-only ``step=`` besides its original arguments.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from .constants import LogCategory, LogLevel
from .fields import DEFAULT_LIMITS, MAX_IDENTIFIER_CHARS, Limits
from .normalise import (
    CATEGORIES,
    LEVELS,
    check_identifier,
    copy_details,
    normalise_attempt,
    normalise_category,
    normalise_duration,
    normalise_level,
    normalise_message,
)
from .record import LogRecord

if TYPE_CHECKING:
    from .delivery import ReplayReport


class Backend(Protocol):
    """What the logger hands a record to (a buffer, or a writer): it stamps
    the record's id and time and keeps it."""

    def append(self, record: LogRecord) -> LogRecord: ...

    #: True when ``append`` encodes the record before it returns (that
    #: encoding is then the record's snapshot: ``log()`` need not copy
    #: ``details``).
    encodes_at_append: bool

    def start(self) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self, timeout: float | None = 10.0) -> bool: ...

    def stats(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def replay(self) -> ReplayReport | None: ...

    def dropped_for(self, trace_id: str, attempt: int | None) -> int: ...

    @property
    def spool_full(self) -> bool: ...


def _trace(trace_id: Any, task_id: Any) -> Any:
    if task_id is not None:
        if trace_id is not None and trace_id != task_id:
            raise ValueError("pass trace_id or task_id, not both")
        return task_id
    return trace_id


def _merge(first: Mapping[str, Any], details: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**first, **details} if details else dict(first)


class OperationTimer:
    """What ``timed_operation`` yields: collects details for the end record."""

    __slots__ = ("details", "started")

    def __init__(self) -> None:
        self.details: dict[str, Any] = {}
        self.started = time.perf_counter()

    def set_details(self, details: Mapping[str, Any]) -> None:
        """Add ``details`` to the completion (or failure) record."""
        self.details.update(details)

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


class ExecutionLogger:
    """Structured execution logs, buffered and shipped in batches."""

    def __init__(
        self, backend: Backend, *, shutdown_timeout: float = 10.0, settings: Any = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.backend = backend
        self.shutdown_timeout = shutdown_timeout
        #: The settings it was built from (``ExecLogSettings``), if any.
        self.settings = settings
        self.limits = limits
        #: Copy ``details`` (one level) at ``log()``, as the standard library's
        #: logging keeps its args: unless the backend encodes the record at
        #: once, the caller could change it before it is shipped.
        self._copy_details = not backend.encodes_at_append

    # -- the core --------------------------------------------------------

    def log(
        self,
        trace_id: str | None = None,
        level: LogLevel | str | None = None,
        category: LogCategory | str | None = None,
        message: str | None = None,
        *,
        task_id: str | None = None,
        step: str | None = None,
        agent_name: str | None = None,
        roadmap_id: str | None = None,
        concept_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        duration_ms: float | None = None,
        attempt: int | None = None,
    ) -> LogRecord:
        """Buffer one record and return it (with its id); never blocks on I/O.

        Raises ``ValueError`` naming the field for an unknown level or
        category, a missing trace_id or message, an identifier over 255
        characters, a duration that is not a finite number, or an attempt
        that is not a whole number from 0.
        """
        return self._append(trace_id, task_id, LEVELS.get(level) or normalise_level(level), category, message,
                            step, agent_name, roadmap_id, concept_id, details, duration_ms, attempt)

    def _append(self, trace_id: Any, task_id: Any, level: str, category: Any, message: Any, step: Any,
                agent_name: Any, roadmap_id: Any, concept_id: Any, details: Any,
                duration_ms: Any, attempt: Any) -> LogRecord:
        """Check and clean the fields, build the record, hand it to the backend.

        The hot path of every method: positional, no keyword dicts. The
        values are in :data:`~.fields.FIELDS` order; the backend stamps the
        first two (id and time).
        """
        # Each field's common case (a short, clean ASCII str; a known
        # category; a dict of details) is checked inline: a function call
        # per field would be a third of what log() costs. Anything else
        # takes the function that checks, cleans or refuses it.
        if task_id is not None:
            trace_id = _trace(trace_id, task_id)
        limits = self.limits
        record = LogRecord((
            None,
            None,
            trace_id if (trace_id.__class__ is str and 0 < len(trace_id) <= MAX_IDENTIFIER_CHARS
                         and trace_id.isascii() and "\x00" not in trace_id)
            else check_identifier(trace_id, "trace_id", required=True),
            level,
            CATEGORIES.get(category) or normalise_category(category),
            message if (message.__class__ is str and 0 < len(message) <= limits.max_message_chars
                        and message.isascii() and "\x00" not in message)
            else normalise_message(message, limits.max_message_chars),
            None if step is None else step if (step.__class__ is str and 0 < len(step) <= MAX_IDENTIFIER_CHARS
                                               and step.isascii() and "\x00" not in step)
            else check_identifier(step, "step"),
            None if agent_name is None else agent_name if (
                agent_name.__class__ is str and 0 < len(agent_name) <= MAX_IDENTIFIER_CHARS
                and agent_name.isascii() and "\x00" not in agent_name)
            else check_identifier(agent_name, "agent_name"),
            None if roadmap_id is None else check_identifier(roadmap_id, "roadmap_id"),
            None if concept_id is None else check_identifier(concept_id, "concept_id"),
            None if details is None else (details.copy() if self._copy_details else details)
            if details.__class__ is dict else copy_details(details),
            None if duration_ms is None else normalise_duration(duration_ms),
            None if attempt is None else normalise_attempt(attempt),
        ))
        record.limits = limits
        record.encoded = None
        record.journal_entry = None
        return self.backend.append(record)

    def debug(self, trace_id: str | None = None, category: LogCategory | str | None = None,
              message: str | None = None, *, task_id: str | None = None, step: str | None = None,
              agent_name: str | None = None, roadmap_id: str | None = None,
              concept_id: str | None = None, details: Mapping[str, Any] | None = None,
              duration_ms: float | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "debug", category, message, step,
                            agent_name, roadmap_id, concept_id, details, duration_ms, attempt)

    def info(self, trace_id: str | None = None, category: LogCategory | str | None = None,
             message: str | None = None, *, task_id: str | None = None, step: str | None = None,
             agent_name: str | None = None, roadmap_id: str | None = None,
             concept_id: str | None = None, details: Mapping[str, Any] | None = None,
             duration_ms: float | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "info", category, message, step,
                            agent_name, roadmap_id, concept_id, details, duration_ms, attempt)

    def warning(self, trace_id: str | None = None, category: LogCategory | str | None = None,
                message: str | None = None, *, task_id: str | None = None, step: str | None = None,
                agent_name: str | None = None, roadmap_id: str | None = None,
                concept_id: str | None = None, details: Mapping[str, Any] | None = None,
                duration_ms: float | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "warning", category, message, step,
                            agent_name, roadmap_id, concept_id, details, duration_ms, attempt)

    def error(self, trace_id: str | None = None, category: LogCategory | str | None = None,
              message: str | None = None, *, task_id: str | None = None, step: str | None = None,
              agent_name: str | None = None, roadmap_id: str | None = None,
              concept_id: str | None = None, details: Mapping[str, Any] | None = None,
              duration_ms: float | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "error", category, message, step,
                            agent_name, roadmap_id, concept_id, details, duration_ms, attempt)

    # -- the original helpers --------------------------------------------
    #
    # Their positional arguments are the original system's; ``step=`` and
    # ``attempt=`` are keyword-only additions. Each builds its record through
    # ``_append`` directly.

    def log_workflow_start(self, trace_id: str | None = None, step: str | None = None,
                           message: str | None = None, roadmap_id: str | None = None,
                           details: Mapping[str, Any] | None = None, *,
                           task_id: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "info", "workflow", message, step, None,
                            roadmap_id, None, details, None, attempt)

    def log_workflow_complete(self, trace_id: str | None = None, step: str | None = None,
                              message: str | None = None, duration_ms: float | None = None,
                              roadmap_id: str | None = None,
                              details: Mapping[str, Any] | None = None, *,
                              task_id: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "info", "workflow", message, step, None,
                            roadmap_id, None, details, duration_ms, attempt)

    def log_agent_start(self, trace_id: str | None = None, agent_name: str | None = None,
                        message: str | None = None, concept_id: str | None = None,
                        details: Mapping[str, Any] | None = None, *, task_id: str | None = None,
                        step: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "info", "agent", message, step, agent_name,
                            None, concept_id, details, None, attempt)

    def log_agent_complete(self, trace_id: str | None = None, agent_name: str | None = None,
                           message: str | None = None, duration_ms: float | None = None,
                           concept_id: str | None = None,
                           details: Mapping[str, Any] | None = None, *, task_id: str | None = None,
                           step: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "info", "agent", message, step, agent_name,
                            None, concept_id, details, duration_ms, attempt)

    def log_agent_error(self, trace_id: str | None = None, agent_name: str | None = None,
                        message: str | None = None, error: Any = None,
                        concept_id: str | None = None,
                        details: Mapping[str, Any] | None = None, *, task_id: str | None = None,
                        step: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "error", "agent", message, step, agent_name,
                            None, concept_id, _merge({"error": error}, details), None, attempt)

    def log_tool_call(self, trace_id: str | None = None, agent_name: str | None = None,
                      tool_name: str | None = None, message: str | None = None,
                      duration_ms: float | None = None,
                      details: Mapping[str, Any] | None = None, *, task_id: str | None = None,
                      step: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "debug", "tool", message, step, agent_name,
                            None, None, _merge({"tool_name": tool_name}, details), duration_ms, attempt)

    def log_retry_start(self, trace_id: str | None = None, message: str | None = None,
                        roadmap_id: str | None = None,
                        details: Mapping[str, Any] | None = None, *, task_id: str | None = None,
                        step: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "info", "retry", message, step, None,
                            roadmap_id, None, details, None, attempt)

    def log_retry_complete(self, trace_id: str | None = None, message: str | None = None,
                           duration_ms: float | None = None, roadmap_id: str | None = None,
                           details: Mapping[str, Any] | None = None, *, task_id: str | None = None,
                           step: str | None = None, attempt: int | None = None) -> LogRecord:
        return self._append(trace_id, task_id, "info", "retry", message, step, None,
                            roadmap_id, None, details, duration_ms, attempt)

    @contextmanager
    def timed_operation(self, trace_id: str | None = None,
                        category: LogCategory | str | None = None,
                        operation_name: str | None = None, agent_name: str | None = None,
                        concept_id: str | None = None, roadmap_id: str | None = None, *,
                        task_id: str | None = None, step: str | None = None,
                        attempt: int | None = None) -> Iterator[OperationTimer]:
        """Log "<operation> started", then "<operation> completed" with its
        duration, or "<operation> failed: <error>" and re-raise."""
        trace_id = _trace(trace_id, task_id)
        where = {"agent_name": agent_name, "concept_id": concept_id, "roadmap_id": roadmap_id,
                 "step": step, "attempt": attempt}
        self.log(trace_id, LogLevel.INFO, category, f"{operation_name} started", **where)
        timer = OperationTimer()
        try:
            yield timer
        except GeneratorExit:
            raise
        except BaseException as exc:
            self.log(trace_id, LogLevel.ERROR, category,
                     f"{operation_name} failed: {str(exc)[:100]}",
                     duration_ms=timer.elapsed_ms,
                     details=_merge({"error": str(exc)}, timer.details), **where)
            raise
        self.log(trace_id, LogLevel.INFO, category, f"{operation_name} completed",
                 duration_ms=timer.elapsed_ms, details=timer.details or None, **where)

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Start the flusher now (it otherwise starts at the first record)."""
        self.backend.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything logged before this call and wait for it: True
        when it was all handed to the broker (see ``RecordBuffer.flush``)."""
        return self.backend.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the flusher thread, waiting at most ``timeout``
        seconds (default: the shutdown timeout); a later ``log()`` restarts
        it. True when everything was published."""
        return self.backend.close(self.shutdown_timeout if timeout is None else timeout)

    def stats(self) -> dict[str, Any]:
        """Counters: buffered, in_flight, published, spooled, replayed,
        dropped, fallback, batches, last_error; flusher_cpu_seconds (the CPU
        the flusher thread spent shipping), flusher_batch_cpu_p99_us (the
        p99 of the CPU one batch took, over recent batches: a bound on the
        longest time the flusher held the GIL) and batch_records_p50."""
        return self.backend.stats()

    def status(self) -> dict[str, Any]:
        """:meth:`stats`, with the spool's figures when there is one
        (spool_segments, spool_bytes, spool_max_bytes, spool_full)."""
        return self.backend.status()

    def replay(self) -> ReplayReport | None:
        """Replay every spool segment no live process holds, oldest first
        (``flask execlog replay``); None when there is no spool."""
        return self.backend.replay()

    def dropped_for(self, trace_id: str, attempt: int | None = None) -> int:
        """How many records of ``trace_id`` (and ``attempt``) this process
        dropped for good since it started: records neither memory, the
        broker nor the spool could keep. The last 10,000 pairs are kept."""
        return self.backend.dropped_for(trace_id, attempt)

    @property
    def spool_full(self) -> bool:
        """Whether the spool is at ``EXECLOG_SPOOL_MAX_BYTES``: records that
        need it (all of them in disk mode; while the broker is down, in
        memory mode) are then dropped and counted, until replay makes room."""
        return self.backend.spool_full
