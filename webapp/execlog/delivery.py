"""What happens to a batch after the buffer lets go of it.

The order is fixed: the primary sink (Celery, or the database for the
``thread`` back end); then, if configured, the direct-database fallback; then
the local spool; and only if the spool cannot be written either, the records
are counted as dropped and a warning (at most one per interval) is logged.

The flusher thread also calls :meth:`Delivery.tick` between batches: it closes
the overflow segment and replays spooled segments, oldest first, while the
primary sink answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from . import metrics
from .fields import ATTEMPT, TRACE_ID
from .record import LogRecord
from .sinks import Sink
from .spool import Spool, SpoolJournal, journaled_batch
from .wire import RowBatch

log = logging.getLogger(__name__)


#: Seconds between two scans of the spool directory by the flusher (the
#: segments and bytes other processes left count against the cap). The
#: flusher ticks after every batch; a scan cost it 15 us, a third of a
#: microsecond a record with batches of 50.
SPOOL_REFRESH_INTERVAL = 1.0

#: How many (trace, attempt) pairs the count of dropped records is kept for.
DROPPED_TRACES_KEPT = 10_000


class Stats:
    """Counters of one logger; every method is thread-safe."""

    FIELDS = ("published", "spooled", "replayed", "dropped", "fallback", "batches")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def add(self, field: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[field] += amount
        metrics.count_records(field, amount)

    def add_dropped(self, traces: list[tuple[Any, Any]]) -> None:
        """Count records dropped for good, by the (trace, attempt) they name."""
        with self._lock:
            self.counts["dropped"] += len(traces)
            for key in traces:
                self.dropped_by_trace[key] = self.dropped_by_trace.pop(key, 0) + 1
            while len(self.dropped_by_trace) > DROPPED_TRACES_KEPT:
                self.dropped_by_trace.pop(next(iter(self.dropped_by_trace)))
        metrics.count_records("dropped", len(traces))

    def dropped_for(self, trace_id: str, attempt: int | None) -> int:
        with self._lock:
            return self.dropped_by_trace.get((trace_id, attempt), 0)

    def error(self, exc: BaseException) -> None:
        with self._lock:
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self.last_error_at = datetime.now(timezone.utc).isoformat()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.counts,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
            }

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.FIELDS, 0)
        #: (trace_id, attempt) -> records dropped, oldest pair first.
        self.dropped_by_trace: dict[tuple[Any, Any], int] = {}
        self.last_error: str | None = None
        #: When, as ISO 8601 with its UTC offset (as every time the API shows).
        self.last_error_at: str | None = None


class RateLimitedWarning:
    """Log a warning at most once per ``interval`` seconds, with a count of
    the occurrences it folded in."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self._suppressed = 0

    def __call__(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            message += " (%d similar warnings suppressed)"
            args = (*args, suppressed)
        log.warning(message, *args)


def _trace_of(row: Any) -> tuple[Any, Any]:
    return row[TRACE_ID], row[ATTEMPT]


@dataclass(frozen=True)
class ReplayReport:
    """What one replay of the whole spool did (``flask execlog replay``)."""

    segments: int
    records: int
    #: Segments still in the spool afterwards.
    remaining: int
    #: Why the rest could not be sent: the primary sink is down (its error).
    sink_down: str | None = None


class Delivery:
    """The buffer's :class:`~.buffer.Shipper`: sinks, spool and replay."""

    def __init__(
        self,
        primary: Sink,
        *,
        spool: Spool | None,
        fallback: Sink | None = None,
        max_batch_size: int = 1000,
        retry_interval: float = 5.0,
        scan_interval: float = 2.0,
        replay_budget: float = 0.5,
        stats: Stats | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.spool = spool
        self.max_batch_size = max_batch_size
        self.retry_interval = retry_interval
        self.scan_interval = scan_interval
        self.replay_budget = replay_budget
        self.counters = stats or Stats()
        self.warn = RateLimitedWarning()
        self.overflow = (
            SpoolJournal(spool, self._spool_failed, keep_spare=False) if spool is not None else None
        )
        self._primary_down_since: float | None = None
        self._next_probe = 0.0
        self._next_replay = 0.0
        self._next_refresh = 0.0
        #: A new process's flusher replays what dead ones left at once, not a tick later.
        self.wants_tick = spool is not None
        self.last_stretch = 0.0

    # -- Shipper ---------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self.counters.snapshot()

    def dropped_for(self, trace_id: str, attempt: int | None) -> int:
        return self.counters.dropped_for(trace_id, attempt)

    @property
    def spool_full(self) -> bool:
        return self.spool is not None and self.spool.full

    def ship(self, records: Sequence[LogRecord], *, journaled: bool) -> bool:
        """Encode (what the disk journal has not encoded yet) and publish.

        ``last_stretch`` is the CPU the whole of it took: an upper bound on
        the longest time it held the GIL (it lets go inside system calls).
        """
        started = time.thread_time()
        # encoded at log() (read back from the journal), or now
        rows = journaled_batch(records) if journaled else RowBatch.encode(records)
        published = self._send(rows)
        if not published:
            if journaled:  # on disk already: the segment is kept for replay
                self.counters.add("spooled", len(rows))
            else:
                self._spool_rows(rows)
        self.last_stretch = time.thread_time() - started
        return published

    def keep(self, records: Sequence[LogRecord]) -> None:
        if self.overflow is None:
            self._drop([_trace_of(r) for r in records], "no spool is configured")
            return
        for record in records:
            if self.overflow.write(record, False):
                self.counters.add("spooled")
            else:
                self._drop([_trace_of(record)], "the spool cannot be written")

    def drop(self, records: Sequence[LogRecord], reason: str) -> None:
        self._drop([_trace_of(r) for r in records], reason)

    def tick(self) -> None:
        if self.overflow is not None:
            self.overflow.tick()
        if self.spool is not None:
            now = time.monotonic()
            if now >= self._next_refresh:  # a scan of the directory: not after every batch
                self._next_refresh = now + SPOOL_REFRESH_INTERVAL
                usage = self.spool.refresh()
                metrics.set_spool(usage.bytes, self.spool.full)
            if now >= self._next_replay:
                self.replay_once(budget=self.replay_budget)

    def close(self) -> None:
        if self.overflow is not None:
            self.overflow.close()
        self.primary.close()
        if self.fallback is not None:
            self.fallback.close()

    def after_fork(self) -> None:
        self.primary.after_fork()
        if self.fallback is not None:
            self.fallback.after_fork()
        if self.spool is not None:
            self.spool.after_fork()
        if self.overflow is not None:
            self.overflow.after_fork()
        self.counters = Stats()
        self.warn = RateLimitedWarning()
        self._primary_down_since = None
        self._next_probe = 0.0
        self._next_replay = 0.0
        self._next_refresh = 0.0
        self.wants_tick = self.spool is not None

    # -- sending ---------------------------------------------------------

    @property
    def primary_down(self) -> bool:
        return self._primary_down_since is not None

    def _send(self, rows: Sequence[bytes]) -> bool:
        """Primary sink, else fallback. While the primary is down it is tried
        again only every ``retry_interval`` s, so that an outage costs each
        batch a spool write, not a publish timeout."""
        now = time.monotonic()
        if self._primary_down_since is not None and now < self._next_probe:
            return self._send_fallback(rows)
        started = time.perf_counter()
        try:
            self.primary.send(rows)
        except Exception as exc:  # noqa: BLE001 - any sink failure is handled alike
            self.counters.error(exc)
            if self._primary_down_since is None:
                self._primary_down_since = now
                log.warning("execlog: %s sink failed: %s", self.primary.name, exc)
            self._next_probe = self._next_replay = time.monotonic() + self.retry_interval
            return self._send_fallback(rows)
        if self._primary_down_since is not None:
            log.warning(
                "execlog: %s sink is back after %.1f s",
                self.primary.name,
                time.monotonic() - self._primary_down_since,
            )
            self._primary_down_since = None
            self._next_replay = 0.0
        metrics.observe_publish(len(rows), time.perf_counter() - started)
        self.counters.add("published", len(rows))
        self.counters.add("batches")
        return True

    def _send_fallback(self, rows: Sequence[bytes]) -> bool:
        if self.fallback is None:
            return False
        try:
            self.fallback.send(rows)
        except Exception as exc:  # noqa: BLE001
            self.counters.error(exc)
            self.warn("execlog: fallback %s sink failed too: %s", self.fallback.name, exc)
            return False
        self.counters.add("fallback", len(rows))
        return True

    def _spool_rows(self, rows: Sequence[bytes]) -> None:
        if self.spool is None:
            self._drop([_trace_of(orjson.loads(row)) for row in rows], "no spool is configured")
            return
        try:
            self.spool.write_rows(rows)
        except OSError as exc:
            self._spool_failed(exc)
            self._drop([_trace_of(orjson.loads(row)) for row in rows], "the spool cannot be written")
            return
        self.counters.add("spooled", len(rows))

    def _spool_failed(self, exc: BaseException) -> None:
        self.counters.error(exc)

    def _drop(self, traces: list[tuple[Any, Any]], reason: str) -> None:
        self.counters.add_dropped(traces)
        self.warn("execlog: dropped %d log record(s): %s", len(traces), reason)

    # -- replay ----------------------------------------------------------

    def replay_once(self, *, max_segments: int | None = None, budget: float | None = None) -> tuple[int, int]:
        """Replay claimable segments, oldest first: up to ``max_segments`` of
        them, or for ``budget`` seconds (the flusher's tick gives replay half
        a second, so that new records are not held up, and ticks again at
        once while segments wait: a replay moves tens of thousands of
        records a second).

        Returns (segments, rows) replayed: at least one segment when one is
        claimable and the sink takes it. Stops at the first failure and
        waits ``retry_interval`` before the next try, so a dead broker is
        probed, not hammered.
        """
        assert self.spool is not None
        self.wants_tick = False
        now = time.monotonic()
        if self._primary_down_since is not None and now < self._next_probe:
            return 0, 0  # reading segments only to fail to send them is waste
        self._next_replay = now + self.scan_interval
        deadline = None if budget is None else now + budget
        segments = rows_sent = 0
        for claimed in self.spool.claimable():
            if (max_segments is not None and segments >= max_segments) or (
                    deadline is not None and segments and time.monotonic() >= deadline):
                claimed.release()
                self._next_replay = 0.0  # more is waiting: the next tick goes on, at once
                self.wants_tick = budget is not None
                break
            rows, bad = claimed.read_rows()
            if bad:
                self._set_aside(claimed.path, bad)
            if not self._send_all(rows):
                claimed.release()
                break
            claimed.delete()
            rows_sent += len(rows)
            segments += 1
        if rows_sent:
            self.counters.add("replayed", rows_sent)
        return segments, rows_sent

    def _set_aside(self, path: Any, bad: list[bytes]) -> None:
        try:
            kept = self.spool.keep_bad_lines(path, bad)  # type: ignore[union-attr]
        except OSError as exc:  # the spool is full, or cannot be written
            self._spool_failed(exc)
            self._drop([(None, None)] * len(bad), f"{len(bad)} unreadable line(s) of {path} not kept: {exc}")
            return
        self.warn("execlog: %d unreadable line(s) in %s kept in %s", len(bad), path, kept)

    def replay_all(self) -> tuple[int, int]:
        """Replay every claimable segment (``flask execlog replay``)."""
        total_segments = total_rows = 0
        while True:
            segments, rows = self.replay_once(max_segments=1)
            if not segments:
                return total_segments, total_rows
            total_segments += segments
            total_rows += rows

    def replay_report(self) -> ReplayReport | None:
        """:meth:`replay_all`, and what is left; None without a spool."""
        if self.spool is None:
            return None
        segments, records = self.replay_all()
        remaining = self.spool.usage().segments
        down = None
        if remaining and self.primary_down:
            down = f"the {self.primary.name} sink is down: {self.counters.last_error}"
        return ReplayReport(segments, records, remaining, down)

    def status(self) -> dict[str, Any]:
        """The spool's figures (none without a spool)."""
        if self.spool is None:
            return {}
        usage = self.spool.refresh()
        return {"spool_segments": usage.segments, "spool_bytes": usage.bytes,
                "spool_max_bytes": self.spool.max_bytes, "spool_full": self.spool.full}

    def _send_all(self, rows: list[bytes]) -> bool:
        for start in range(0, len(rows), self.max_batch_size):
            if not self._send(rows[start : start + self.max_batch_size]):
                return False
        return True
