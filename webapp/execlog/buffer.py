"""The in-process buffer behind ``log()`` and the flusher thread that empties it.

``append()`` is all a caller pays for: it stamps the record's time and id under
one lock and puts the record in a bounded deque. A daemon flusher thread ships
what is buffered when there are ``batch_size`` records, when the oldest is
``flush_interval`` seconds old, on ``flush()`` and on ``close()``.

Fork safety: a forked child (gunicorn after ``--preload``, Celery prefork)
inherits neither the thread nor a usable lock. An ``os.register_at_fork`` hook
gives the child a fresh, empty buffer (the parent ships the records it had)
and the thread is started again lazily by the child's first ``log()``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from .. import metrics
from .forking import call_in_forked_children
from .ids import MonotonicStamp
from .record import Limits, LogRecord


class Shipper(Protocol):
    """Where the flusher hands records (implemented in :mod:`.delivery`)."""

    def ship(self, records: Sequence[LogRecord], *, journaled: bool) -> bool:
        """Publish ``records``; True if published. Keeps them safe otherwise
        (spool) unless ``journaled`` says they are already on disk."""

    def keep(self, records: Sequence[LogRecord]) -> None:
        """Keep records that will not be published now (spool), or count
        them as dropped when even that fails."""

    def tick(self) -> None:
        """Periodic work of the flusher thread (replaying the spool)."""

    def after_fork(self) -> None:
        """Drop what belongs to the parent process."""

    def close(self) -> None:
        """Finish what is open (spool segments)."""

    def stats(self) -> dict[str, Any]:
        """Counters of what was shipped, spooled, dropped."""


class Journal(Protocol):
    """Per-record durable append (``EXECLOG_DURABILITY=disk``)."""

    def write(self, record: LogRecord, *, in_memory: bool) -> bool:
        """Append under the buffer's lock; never raises (counts failures)."""

    def settle(self, records: Sequence[LogRecord], published: bool) -> None:
        """The flusher shipped ``records``: their segments may go."""

    def tick(self) -> None:
        """Flusher housekeeping (rotation, the next segment)."""

    def close(self) -> None: ...

    def after_fork(self) -> None: ...


class RecordBuffer:
    """Thread-safe bounded buffer of log records with its flusher thread."""

    def __init__(
        self,
        shipper: Shipper,
        *,
        batch_size: int = 50,
        flush_interval: float = 2.0,
        max_batch_size: int = 1000,
        max_records: int = 100_000,
        limits: Limits | None = None,
        journal: Journal | None = None,
        tick_interval: float = 1.0,
    ) -> None:
        if batch_size < 1 or max_batch_size < batch_size:
            raise ValueError("need 1 <= batch_size <= max_batch_size")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_records < batch_size:
            raise ValueError("max_records must be at least batch_size")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_batch_size = max_batch_size
        self.max_records = max_records
        self.tick_interval = tick_interval
        self.limits = limits or Limits()
        self._shipper = shipper
        self._journal = journal
        self._reset()
        call_in_forked_children(self, RecordBuffer._after_fork_in_child)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition(threading.Lock())
        self._records: deque[LogRecord] = deque()
        self._stamp = MonotonicStamp()
        self._oldest_at: float | None = None
        # Sequence numbers: records appended, records whose shipping ended
        # (published or kept safe), the last of those not published, and the
        # highest sequence a flush() waits for.
        self._appended = 0
        self._completed = 0
        self._last_unpublished = 0
        self._flush_wanted = 0
        self._in_flight: list[LogRecord] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._flusher_cpu = 0.0

    # -- producer side ---------------------------------------------------

    def append(
        self,
        trace_id: str,
        level: str,
        category: str,
        message: Any,
        step: str | None,
        agent_name: str | None,
        roadmap_id: str | None,
        concept_id: str | None,
        details: Any,
        duration_ms: float | None,
    ) -> LogRecord:
        """Stamp a record and buffer it; never waits on the network."""
        journal = self._journal
        with self._lock:
            created_ns, counter = self._stamp.next()
            record = LogRecord(
                created_ns,
                counter,
                trace_id,
                level,
                category,
                message,
                step,
                agent_name,
                roadmap_id,
                concept_id,
                details,
                duration_ms,
                self.limits,
            )
            records = self._records
            in_memory = len(records) < self.max_records
            if in_memory:
                records.append(record)
                self._appended += 1
                if len(records) == 1:
                    self._oldest_at = time.monotonic()
                if len(records) == self.batch_size:
                    self._wake.set()
            if journal is not None:
                journal.write(record, in_memory=in_memory)
        if self._thread is None:
            self._ensure_thread()
        if not in_memory and journal is None:
            self._shipper.keep([record])
        return record

    def __len__(self) -> int:
        return len(self._records)

    @property
    def shipper(self) -> Shipper:
        return self._shipper

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def stats(self) -> dict[str, Any]:
        return {
            "buffered": len(self._records),
            "in_flight": len(self._in_flight),
            "flusher_cpu_seconds": round(self._flusher_cpu, 6),
            **self._shipper.stats(),
        }

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything buffered before this call and wait for it.

        Returns True when every such record was published; False when the
        timeout expired first or some were kept in the spool instead (the
        broker was unreachable). Called from the flusher thread itself, it
        returns False at once rather than wait on itself.
        """
        if threading.current_thread() is self._thread:
            return False
        with self._lock:
            target = self._appended
        with self._done:
            start = self._completed
            if target <= start:
                return True
            self._flush_wanted = max(self._flush_wanted, target)
        self._ensure_thread()
        self._wake.set()
        with self._done:
            finished = self._done.wait_for(lambda: self._completed >= target, timeout)
            return finished and self._last_unpublished <= start

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the flusher thread and wait for it up to ``timeout``.

        Records still in memory when the timeout expires (the sink hangs) are
        handed to the spool from this thread, so they survive the exit.
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            ok = self._drain_here()
        else:
            deadline = None if timeout is None else time.monotonic() + timeout
            ok = self.flush(timeout)
            self._stopping = True
            self._wake.set()
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self._rescue_after_timeout()
                ok = False
        if self._journal is not None:
            self._journal.close()
        self._shipper.close()
        return ok

    # -- flusher thread --------------------------------------------------

    def start(self) -> None:
        """Start the flusher thread now rather than at the first ``log()``,
        so that this process replays spooled segments even before it logs
        (process hooks call it: gunicorn ``post_worker_init``, Celery
        ``worker_process_init``)."""
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            thread = threading.Thread(
                target=self._run, name="execlog-flusher", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: no new threads
                self._thread = None
                self._drain_here()
                return
            self._thread = thread

    def _run(self) -> None:
        try:
            while True:
                self._wait_for_work()
                started_cpu = time.thread_time()
                shipped = self._ship_once()
                metrics.set_buffered(len(self._records))
                if self._stopping and shipped is None and not self._records:
                    break
                self._shipper.tick()
                if self._journal is not None:
                    self._journal.tick()
                self._count_cpu(time.thread_time() - started_cpu)
        finally:
            with self._thread_lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _count_cpu(self, seconds: float) -> None:
        """The flusher thread's own CPU: what shipping costs this process."""
        self._flusher_cpu += seconds
        metrics.add_flusher_cpu(seconds)

    def _wait_for_work(self) -> None:
        """Return when a batch is due, a flush is wanted, or one tick passed
        (at most ``tick_interval`` s: ticks replay the spool)."""
        deadline = time.monotonic() + min(self.flush_interval, self.tick_interval)
        while True:
            self._wake.clear()
            with self._lock:
                count = len(self._records)
                oldest_at = self._oldest_at
            if self._stopping or count >= self.batch_size:
                return
            if count and self._flush_wanted > self._completed:
                return
            now = time.monotonic()
            if count and oldest_at is not None:
                due = oldest_at + self.flush_interval
                if due <= now:
                    return
                deadline = min(deadline, due)
            elif now >= deadline:
                return
            self._wake.wait(max(0.0, deadline - now))

    def _take(self) -> list[LogRecord]:
        with self._lock:
            records = list(self._records)
            self._records.clear()
            self._oldest_at = None
            self._in_flight = records
        return records

    def _ship_once(self) -> bool | None:
        """Ship what is buffered: None if nothing was, else whether published."""
        records = self._take()
        if not records:
            return None
        published = True
        journaled = self._journal is not None
        for start in range(0, len(records), self.max_batch_size):
            chunk = records[start : start + self.max_batch_size]
            if not self._shipper.ship(chunk, journaled=journaled):
                published = False
                rest = records[start + self.max_batch_size :]
                if rest and not journaled:
                    self._shipper.keep(rest)
                break
        if self._journal is not None:
            self._journal.settle(records, published)
        self._complete(len(records), published)
        return published

    def _complete(self, count: int, published: bool) -> None:
        with self._done:
            self._in_flight = []
            self._completed += count
            if not published:
                self._last_unpublished = self._completed
            self._done.notify_all()

    def _drain_here(self) -> bool:
        """Ship everything from the calling thread (no flusher available)."""
        all_published = True
        while (published := self._ship_once()) is not None:
            all_published = all_published and published
        return all_published

    def _rescue_after_timeout(self) -> None:
        """The flusher is stuck in a sink: keep what it holds on disk."""
        with self._lock:
            pending = list(self._in_flight) + list(self._records)
            self._records.clear()
        if pending and self._journal is None:
            self._shipper.keep(pending)

    def _after_fork_in_child(self) -> None:
        self._reset()
        self._shipper.after_fork()
        if self._journal is not None:
            self._journal.after_fork()
