"""The in-process buffer behind ``log()`` and the flusher thread that empties it.

``append()`` is all a caller pays for: under one lock it stamps the record's
id and time and puts it in a deque. A daemon flusher thread ships what is
buffered when there are ``batch_size`` records, when the oldest is
``flush_interval`` seconds old, on ``flush()`` and on ``close()``. When it is
behind (records came in while it was shipping), it ships everything that
waits, up to ``max_batch_size`` records a message, so that the fixed cost of
a message is shared by more records as the load rises.

``flush()`` puts a marker in the deque and waits for the flusher to reach it:
everything appended before the marker has then been shipped.

Who wakes the flusher: while records come fast enough to fill batches, the
flusher looks every :data:`POLL_INTERVAL` seconds by itself; only when it
sleeps the long way (light traffic) does the ``log()`` that fills a batch
wake it. Waking a thread is a system call (and, on a VM, an interrupt to
another core) that cost that ``log()`` tens of microseconds: the tail of
``log()``'s time under load was those calls.

The lock and the GIL: nothing under the buffer's lock calls a function.
``append()`` takes the next stamp and makes the id (and, in disk mode, the
row) before the lock, then under it claims that stamp, unless another
thread claimed one meanwhile (then it stamps again, there: the rare path),
and puts the record in with ``deque += (record,)``; so ids still follow
buffer order. The interpreter hands the GIL to a waiting thread
at a call or a loop's jump back; a thread that lost it inside the lock kept
every other thread's ``log()`` waiting until it ran again, and the thread
that ran meanwhile (a request fresh from reading its body) blocked at its
first ``log()``: under a saturating load, about half of the requests' first
calls did, against one in a hundred or so without calls under the lock
(``bench/log_waits.py``).

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
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from . import metrics
from .fields import CREATED_AT_US, DETAILS, ID
from .forking import call_in_forked_children
from .ids import MonotonicStamp, uuid7_hex
from .normalise import PLAIN_SCALARS, json_default
from .record import LogRecord
from .wire import NUL_ESCAPE, ROW_OPTION, encode_record

if TYPE_CHECKING:
    from .spool import SpoolJournal

_dumps = orjson.dumps
_monotonic = time.monotonic

#: How many recent batches the flusher's percentiles are taken over.
STRETCH_WINDOW = 1024
#: Seconds between two looks of a flusher that polls (see the module).
POLL_INTERVAL = 0.005


class Shipper(Protocol):
    """Where the flusher hands records (implemented in :mod:`.delivery`)."""

    def ship(self, records: Sequence[LogRecord], *, journaled: bool) -> bool:
        """Encode and publish ``records``; True if published. Keeps them safe
        otherwise (spool) unless ``journaled`` says they are on disk already.
        """

    #: The longest stretch of CPU (seconds) the last ``ship()`` took between
    #: two waits on the network: a bound on how long it held the GIL.
    last_stretch: float

    def keep(self, records: Sequence[LogRecord]) -> None:
        """Keep records that will not be published now (spool), or count
        them as dropped when even that fails."""

    def drop(self, records: Sequence[LogRecord], reason: str) -> None:
        """Count records that nothing could keep, and warn (rate-limited)."""

    def tick(self) -> None:
        """Periodic work of the flusher thread (replaying the spool)."""

    #: True when the last tick left work it wants to go on with at once (a
    #: replay cut short by its time budget), rather than a tick later.
    wants_tick: bool

    def after_fork(self) -> None:
        """Drop what belongs to the parent process."""

    def close(self) -> None:
        """Finish what is open (spool segments, the broker connection)."""

    def stats(self) -> dict[str, Any]:
        """Counters of what was shipped, spooled, dropped."""

    def status(self) -> dict[str, Any]:
        """The spool's figures, if there is a spool."""

    def replay_report(self) -> Any:
        """Replay the whole spool; what it did (None without a spool)."""

    def dropped_for(self, trace_id: str, attempt: int | None) -> int:
        """Records of this trace and attempt dropped for good."""

    @property
    def spool_full(self) -> bool:
        """Whether the spool is at its cap."""


class Journal(Protocol):
    """What the flusher needs of a journal (:class:`JournaledBuffer` writes
    into a :class:`~.spool.SpoolJournal` itself)."""

    #: The lock of its writes, which the buffer takes as its own.
    lock: Any

    def settle(self, records: Sequence[LogRecord], published: bool) -> None:
        """The flusher shipped ``records``: their segments may go."""

    def tick(self) -> None:
        """Flusher housekeeping (rotation, the next segment, syncs)."""

    #: True when the journal wants its tick soon (its spare was taken).
    wants_tick: bool

    #: Called (once) when it takes its spare segment: wakes the flusher.
    on_rotate: Any

    #: True when the spool is at its cap.
    full: bool

    def close(self) -> None: ...

    def after_fork(self) -> None: ...


class FlushMarker:
    """Put in the deque by ``flush()``; the flusher settles it once it has
    shipped everything before it."""

    __slots__ = ("unpublished_before", "published", "done")

    def __init__(self, unpublished_before: int) -> None:
        self.unpublished_before = unpublished_before
        self.published = False
        self.done = threading.Event()


class RecordBuffer:
    """Thread-safe bounded buffer of log records with its flusher thread
    (``EXECLOG_DURABILITY=memory``; :class:`JournaledBuffer` for ``disk``)."""

    #: The journal every record is also written to (JournaledBuffer's).
    _journal: Journal | None = None
    #: Records are encoded by the flusher, not in append().
    encodes_at_append = False

    def __init__(
        self,
        shipper: Shipper,
        *,
        batch_size: int = 50,
        flush_interval: float = 2.0,
        max_batch_size: int = 1000,
        max_records: int = 100_000,
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
        self._shipper = shipper
        self._reset()
        call_in_forked_children(self, RecordBuffer._after_fork_in_child)

    def _reset(self) -> None:
        self._reset_state()
        if self._journal is not None:
            # The journal wakes the flusher when it takes its spare segment,
            # so that the next one is made at once, off the callers' path.
            self._journal.on_rotate = self._wake.set

    def _reset_state(self) -> None:
        # Disk mode: one lock for the buffer and its journal (see append()).
        self._lock = threading.Lock() if self._journal is None else self._journal.lock
        self._thread_lock = threading.Lock()
        self._wake = threading.Event()
        #: Records and flush markers, oldest first; only the flusher pops.
        self._queue: deque[LogRecord | FlushMarker] = deque()
        self._buffered = 0
        #: When the oldest buffered record came (monotonic; None: none).
        self._oldest_at: float | None = None
        #: When the flusher last took the buffer (monotonic): a bound on
        #: when a record that found it empty came (see append()).
        self._taken_at = 0.0
        #: The flusher looks by itself: no log() needs to wake it.
        self._polling = False
        self._stamp = MonotonicStamp()
        #: Chunks that could not be published (they went to the spool):
        #: a flush is True only if none was added while it waited.
        self._unpublished = 0
        self._flush_wanted = 0
        #: What the flusher took (records, markers); it has not shipped
        #: ``_in_flight[_in_flight_next:]`` yet.
        self._in_flight: list[LogRecord | FlushMarker] = []
        self._in_flight_next = 0
        self._in_flight_count = 0
        #: The chunk the shipper has now.
        self._shipping: list[LogRecord] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._flusher_cpu = 0.0
        self._stretches: deque[float] = deque(maxlen=STRETCH_WINDOW)
        self._batch_sizes: deque[int] = deque(maxlen=STRETCH_WINDOW)

    # -- producer side ---------------------------------------------------

    def append(self, record: LogRecord) -> LogRecord:
        """Stamp a record and buffer it; never waits on the network. Beyond
        ``max_records`` it goes to the spool instead (or is dropped and
        counted when the spool cannot take it)."""
        stamp = self._stamp
        now, counter, record[ID] = stamp.peek()
        record[CREATED_AT_US] = now // 1000
        # Read without the lock too: when the guess is wrong (the flusher
        # took the buffer meanwhile), the record counts as old as that take,
        # which only ships it sooner.
        came = _monotonic() if not self._buffered else 0.0
        with self._lock:
            # No calls in here but on the rare path (see "The lock and the GIL").
            if counter != stamp.counter + 1 or now < stamp.last_ns:
                self._stamp_again(record)
            else:
                stamp.last_ns, stamp.counter = now, counter
            in_memory = self._buffered + self._in_flight_count < self.max_records
            if in_memory:
                self._queue += (record,)
                self._buffered += 1
                if self._buffered == 1:
                    self._oldest_at = came or self._taken_at
                due = self._buffered == self.batch_size and not self._polling
            else:
                due = False
        if due:
            self._wake.set()
        if self._thread is None:
            self._ensure_thread()
        if not in_memory:
            self._shipper.keep([record])
        return record

    def _stamp_again(self, record: LogRecord) -> None:
        """Under the lock: another thread claimed a stamp after ``record``
        took its own, so take the next one (rare: only when the GIL changed
        hands in between)."""
        now, counter = self._stamp.next()
        record[ID] = uuid7_hex(now, counter)
        record[CREATED_AT_US] = now // 1000

    def __len__(self) -> int:
        return self._buffered

    @property
    def shipper(self) -> Shipper:
        return self._shipper

    @property
    def in_flight(self) -> int:
        return self._in_flight_count

    def stats(self) -> dict[str, Any]:
        return {
            "durability": "memory" if self._journal is None else "disk",
            "buffered": self._buffered,
            "in_flight": self._in_flight_count,
            "flusher_cpu_seconds": round(self._flusher_cpu, 6),
            "flusher_batch_cpu_p99_us": _p99_us(self._stretches),
            "batch_records_p50": _p50(self._batch_sizes),
            "spool_full": self.spool_full,
            **self._shipper.stats(),
        }

    def dropped_for(self, trace_id: str, attempt: int | None) -> int:
        return self._shipper.dropped_for(trace_id, attempt)

    def status(self) -> dict[str, Any]:
        return {**self.stats(), **self._shipper.status()}

    def replay(self) -> Any:
        return self._shipper.replay_report()

    @property
    def spool_full(self) -> bool:
        return self._shipper.spool_full

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
            if not self._buffered and not self._in_flight_count:
                return True
            marker = FlushMarker(self._unpublished)
            self._queue.append(marker)
            self._flush_wanted += 1
        self._ensure_thread()
        self._wake.set()
        return marker.done.wait(timeout) and marker.published

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
            thread = threading.Thread(target=self._run, name="execlog-flusher", daemon=True)
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
                shipped = self._ship_once() if self._due() else None
                metrics.set_buffered(self._buffered)
                if self._stopping and shipped is None and not self._queue:
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
        """Return when shipping is due, or one tick passed (at most
        ``tick_interval`` s: ticks replay the spool). While polling, look
        every :data:`POLL_INTERVAL` s, and stop polling (be woken again)
        once a look finds that no record came."""
        deadline = time.monotonic() + min(self.flush_interval, self.tick_interval)
        while True:
            self._wake.clear()
            if self._due() or self._shipper.wants_tick or (
                    self._journal is not None and self._journal.wants_tick):
                return
            now = time.monotonic()
            age = self._oldest_age()
            if age is not None:
                deadline = min(deadline, now + self.flush_interval - age)
            if now >= deadline:
                return
            if not self._polling:
                self._wake.wait(max(0.0, deadline - now))
                continue
            seen = self._buffered
            self._wake.wait(min(POLL_INTERVAL, max(0.0, deadline - now)))
            with self._lock:  # with append()'s check: a record after this wakes us
                if self._buffered == seen:
                    self._polling = False

    def _due(self) -> bool:
        """A stop or a flush waits, a batch is full, or the oldest record is
        ``flush_interval`` old."""
        if self._stopping:
            return True
        if self._flush_wanted or self._buffered >= self.batch_size:
            return bool(self._queue)
        age = self._oldest_age()
        return age is not None and age >= self.flush_interval

    def _oldest_age(self) -> float | None:
        oldest_at = self._oldest_at
        return None if oldest_at is None else time.monotonic() - oldest_at

    def _take(self) -> tuple[list[LogRecord | FlushMarker], bool]:
        """Everything buffered, in one swap under the lock (the appenders
        never wait behind the flusher for more than that), as a list, and
        whether flush markers are among it."""
        fresh: deque[LogRecord | FlushMarker] = deque()
        taken_at = time.monotonic()
        with self._lock:
            queue, self._queue = self._queue, fresh
            self._taken_at = taken_at
            markers = self._flush_wanted > 0
            # Records fill batches: look by ourselves until they stop coming.
            self._polling = self._buffered >= self.batch_size
            self._in_flight_count += self._buffered
            self._buffered = 0
            self._flush_wanted = 0
            self._oldest_at = None
            taken = list(queue)  # C speed: chunks are slices of it
            self._in_flight, self._in_flight_next = taken, 0
        return taken, markers

    def _ship_once(self, everything: bool = False) -> bool | None:
        """Ship what is due (or ``everything``): all that waits, in messages
        of up to ``max_batch_size`` records, so that the batches grow when the
        flusher is behind. None if there was nothing, else whether every
        record was published."""
        all_published: bool | None = None
        while True:
            taken, with_markers = self._take()
            if not taken:
                return all_published
            # (a close that timed out took over what is left: no longer ours)
            while self._in_flight is taken and self._in_flight_next < len(taken):
                records, markers = self._next_chunk(taken, with_markers)
                published = self._ship_chunk(records) if records else True
                all_published = published and all_published is not False
                for marker in markers:
                    marker.published = self._unpublished == marker.unpublished_before
                    marker.done.set()
            if not everything and not self._due():
                return all_published

    def _next_chunk(self, taken: list[LogRecord | FlushMarker],
                    with_markers: bool = True) -> tuple[list[LogRecord], list[FlushMarker]]:
        """The next message's records, from ``taken[self._in_flight_next:]``:
        up to ``max_batch_size``, and no further than the next flush marker
        (settled once they are shipped)."""
        start = self._in_flight_next
        chunk = taken[start:start + self.max_batch_size]
        markers: list[FlushMarker] = []
        if with_markers:
            for index, item in enumerate(chunk):
                if item.__class__ is FlushMarker:
                    chunk, markers = chunk[:index], [item]  # type: ignore[list-item]
                    break
        # The chunk is the shipper's before it leaves what is in flight (a
        # rescue after a timed-out close finds it in one or the other).
        self._shipping = chunk  # type: ignore[assignment]
        self._in_flight_next = start + len(chunk) + len(markers)
        return chunk, markers  # type: ignore[return-value]

    def _ship_chunk(self, records: list[LogRecord]) -> bool:
        published = self._shipper.ship(records, journaled=self._journal is not None)
        self._batch_sizes.append(len(records))
        self._stretches.append(self._shipper.last_stretch)
        if self._journal is not None:
            self._journal.settle(records, published)
        with self._lock:  # with the in-flight count, so that flush() sees one or the other
            if not published:
                self._unpublished += 1
            self._in_flight_count -= len(records)
            self._shipping = []
        return published

    def _drain_here(self) -> bool:
        """Ship everything from the calling thread (no flusher available)."""
        return self._ship_once(everything=True) is not False

    def _rescue_after_timeout(self) -> None:
        """The flusher is stuck in a sink: keep what it holds on disk."""
        with self._lock:
            queued = (*self._shipping, *self._in_flight[self._in_flight_next:], *self._queue)
            pending = [r for r in queued if r.__class__ is not FlushMarker]
            self._in_flight, self._in_flight_next = [], 0
            self._queue = deque()
            self._buffered = self._in_flight_count = 0
            self._oldest_at = None
        if pending and self._journal is None:
            self._shipper.keep(pending)

    def _after_fork_in_child(self) -> None:
        self._shipper.after_fork()
        if self._journal is not None:
            self._journal.after_fork()
        self._reset()


class JournaledBuffer(RecordBuffer):
    """The buffer of ``EXECLOG_DURABILITY=disk``: every record is also
    copied, encoded, into the journal's memory-mapped segment before
    ``append()`` returns, so a process killed with records in memory loses
    none (the segment outlives it in the page cache; see :mod:`.spool`).

    One lock covers the stamp, the journal and the buffer. ``append()``
    stamps and encodes the record before it takes the lock, and under it
    claims the stamp and copies the row into the segment. ``append()`` does
    the common case of :func:`~.wire.encode_record` and of
    :meth:`~.spool.SpoolJournal.write_line` inline: two calls were a fifth of
    what journaling adds to a ``log()`` call (``bench/log_call.py``), and the
    target is within 1.5x of memory mode. Anything else takes those two
    (``tests/integration/test_spool.py`` checks both ways give the same bytes).
    """

    #: Every record is encoded in append() (its journal line).
    encodes_at_append = True

    def __init__(self, shipper: Shipper, journal: SpoolJournal, **options: Any) -> None:
        self._journal = journal
        super().__init__(shipper, **options)

    def append(self, record: LogRecord) -> LogRecord:
        """Stamp, journal and buffer a record. One neither the journal nor
        memory can take (the spool is at its cap, or cannot be written while
        memory is full) is dropped and counted."""
        journal: SpoolJournal = self._journal  # type: ignore[assignment]
        stamp = self._stamp
        now, counter, record[ID] = stamp.peek()
        record[CREATED_AT_US] = now // 1000
        # encode_record(), its common case, before the lock (orjson is a call)
        details = record[DETAILS]
        limits = record.limits
        line = None
        if details is not None:
            for value in details.values():
                if value.__class__ not in PLAIN_SCALARS:
                    line = encode_record(record, limits)
                    break
        if line is None:
            try:
                line = _dumps(record, json_default, ROW_OPTION)
            except TypeError:
                line = encode_record(record, limits)
            else:
                if ((line.find(b"\\") >= 0 and line.find(NUL_ESCAPE) >= 0)
                        or (details is not None and len(line) > limits.max_details_chars)):
                    line = encode_record(record, limits)
        size = len(line)
        came = _monotonic() if not self._buffered else 0.0
        with self._lock:
            # As RecordBuffer.append(), no calls in here but on the rare
            # paths (a stamp taken meanwhile, a segment to rotate, a full spool).
            if counter != stamp.counter + 1 or now < stamp.last_ns:
                self._stamp_again(record)
                line = encode_record(record, limits)
                size = len(line)
            else:
                stamp.last_ns, stamp.counter = now, counter
            in_memory = self._buffered + self._in_flight_count < self.max_records
            # SpoolJournal.write_line(), its common case: the line fits
            entry = journal.active
            segment = None if entry is None else entry.segment
            start = 0 if segment is None else segment.size
            end = start + size
            if segment is not None and end <= segment.capacity:
                segment.view[start:end] = line  # type: ignore[index]
                segment.size = end
                entry.written += 1  # type: ignore[union-attr]
                journaled = True
                if in_memory:
                    record.journal_entry = entry
                    record.journal_at = start
                else:
                    entry.settled += 1  # type: ignore[union-attr]
                    entry.spilled = True  # type: ignore[union-attr]
            else:
                journaled = journal.write_line(record, line, in_memory)
            # Memory keeps what was journaled, or what failed to be for a
            # reason other than a full spool.
            if in_memory and (journaled or not journal.full):
                self._queue += (record,)
                self._buffered += 1
                if self._buffered == 1:
                    self._oldest_at = came or self._taken_at
                due = self._buffered == self.batch_size and not self._polling
            else:
                due = in_memory = False
        if due:
            self._wake.set()
        if self._thread is None:
            self._ensure_thread()
        if not in_memory and not journaled:
            why = "the spool is full" if journal.full else "the spool cannot be written"
            self._shipper.drop([record], why)
        return record


def _p99_us(values: deque[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e6, 1)


def _p50(values: deque[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2])
