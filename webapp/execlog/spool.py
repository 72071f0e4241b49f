"""The durable local spool: segment files of wire rows and their replay.

A segment is a file of newline-terminated JSON arrays (wire rows) in
``EXECLOG_SPOOL_DIR``. Three kinds of records land in one:

* a batch that could not be published (broker unreachable);
* a record that did not fit in memory (``EXECLOG_MAX_BUFFER`` reached);
* with ``EXECLOG_DURABILITY=disk``, every record as ``log()`` is called.

Ownership is a lock, not a PID: the process writing a segment holds an
exclusive ``flock`` on it for as long as it may still append to it or ship
it. The kernel drops that lock when the process dies, however it dies, so a
segment that can be locked belongs to nobody and any live producer (or
``flask execlog replay``) may claim it, replay it and delete it. Segments are
created under a ``.tmp`` name and renamed once locked, so no one can claim a
segment before its writer holds it.

Replaying a record that had in fact arrived is harmless: ids are idempotency
keys. What the spool does not survive is the loss of the host's disk (or of
its page cache, in a power cut: segments are not fsync'ed per record).
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from .record import LogRecord
from .wire import RowBatch, encode_record, read_spooled_line, spool_lines

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
#: Where lines that are not rows are set aside (they count against the cap).
CORRUPT_DIR = "corrupt"
_TMP_SUFFIX = ".tmp"
#: Linux 5.14's madvise(2) advice (Python 3.11 has no name for it).
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)
_PREFAULT_STEP = 64 * 1024
#: Size of a journal segment; a larger record gets a segment of its own size.
SEGMENT_BYTES = 4 * 1024 * 1024


class SpoolSegment:
    """A segment this process owns: created, locked, written through mmap.

    The file is preallocated (``posix_fallocate``) to ``capacity`` bytes and
    mapped, so an append is a copy into the page cache: no system call, no
    file-system stall in ``log()``, and no SIGBUS on a full disk (the blocks
    exist before they are touched). What was copied survives the death of
    the process; the unused tail is zeros, cut when the segment is finished.
    """

    __slots__ = ("path", "capacity", "size", "pid", "_fd", "view", "__weakref__")

    def __init__(self, directory: Path, capacity: int) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp_path = directory / (name + _TMP_SUFFIX)
        self.path = directory / (name + SEGMENT_SUFFIX)
        self.capacity = capacity
        self.size = 0
        self.pid = os.getpid()
        self._fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            os.posix_fallocate(self._fd, 0, capacity)
            #: The mapping (None once closed); the journal's writers copy into it.
            self.view: mmap.mmap | None = mmap.mmap(self._fd, capacity)
            os.rename(tmp_path, self.path)
        except BaseException:
            os.close(self._fd)
            os.unlink(tmp_path)
            raise

    def append(self, data: bytes) -> int | None:
        """Copy ``data`` (whole lines: an encoded row ends with a newline) in;
        where it starts, or None (and nothing written) when it does not fit."""
        start = self.size
        end = start + len(data)
        if end > self.capacity:
            return None
        self.view[start:end] = data  # type: ignore[index]
        self.size = end
        return start

    def line_at(self, start: int) -> bytes | None:
        """The line written at ``start`` (None once the segment is closed)."""
        view = self.view
        if view is None:
            return None
        try:
            return view[start : view.find(b"\n", start) + 1]
        except ValueError:  # closed by the flusher meanwhile
            return None

    def prefault(self) -> None:
        """Make every page of the mapping present and writable now (Linux's
        ``MADV_POPULATE_WRITE``), so that no ``log()`` pays the fault of a page
        first written to: tens of microseconds each on this kind of VM, even
        for a page already read in (``MAP_POPULATE`` maps them read-only).
        In 64 KiB steps: the call holds the GIL, and a step takes about 0.1 ms
        (so a log() waits that long at most behind it). Where the kernel has
        no such advice, it does nothing."""
        view = self.view
        if view is None:
            return
        try:
            for offset in range(0, self.capacity, _PREFAULT_STEP):
                view.madvise(_MADV_POPULATE_WRITE, offset, min(_PREFAULT_STEP, self.capacity - offset))
        except (OSError, ValueError):
            pass  # an older kernel (EINVAL), or closed meanwhile

    def sync(self) -> None:
        """Write what was copied in to the disk (``msync``): it then survives
        a power loss of the host, not only the death of the process."""
        if self.view is not None and self.size:
            self.view.flush(0, -(-self.size // mmap.PAGESIZE) * mmap.PAGESIZE)

    def finish(self, keep: bool) -> None:
        """Close the segment: left for replay when ``keep`` (cut to its used
        size and unlocked, so any producer may claim it), else deleted."""
        if keep and self.size:
            os.ftruncate(self._fd, self.size)
        else:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._close()

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the inherited mapping and descriptor
        without unlocking (the lock belongs to the parent's open file
        description, which stays open in the parent)."""
        self._close()

    def _close(self) -> None:
        self.capacity = 0  # nothing fits any more
        if self.view is not None:
            self.view.close()
            self.view = None
        if self._fd >= 0:
            os.close(self._fd)  # the last descriptor of ours: the lock goes
            self._fd = -1


class ClaimedSegment:
    """A segment some dead (or finished) writer left, locked by us to replay."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def read_rows(self) -> tuple[list[bytes], list[bytes]]:
        """The rows in the segment (wire bytes, in today's layout), and the
        lines that are not rows (a write cut short by a crash)."""
        with os.fdopen(os.dup(self._fd), "rb") as stream:
            data = stream.read()
        # A writer that died leaves its preallocated tail as zeros.
        data = data.split(b"\x00", 1)[0]
        rows: list[bytes] = []
        bad: list[bytes] = []
        for line in data.split(b"\n"):
            if not line:
                continue
            row = read_spooled_line(line)
            if row is None:
                bad.append(line)
            else:
                rows.append(row)
        return rows, bad

    def delete(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class SpoolUsage:
    segments: int
    bytes: int


class SpoolFull(OSError):
    """The spool holds ``EXECLOG_SPOOL_MAX_BYTES`` already: nothing more is
    written to it until replay makes room."""


class Spool:
    """The spool directory of one host, at most ``max_bytes`` big (None: no cap).

    What it holds is known from a scan of the directory (segments at their
    allocated size, set-aside corrupt lines) that the flusher repeats once a
    second (:meth:`refresh`), plus what this process made since. Several
    processes share the directory, each counting the others at its last
    scan, so the cap is exceeded at most by what they made within a second.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._owned: weakref.WeakSet[SpoolSegment] = weakref.WeakSet()
        self._bytes = 0
        self._scanned = False
        #: The size of the last write the cap refused, until it would fit.
        self._refused = 0
        #: Held while this process reserves and makes a file, and while it
        #: scans: a scan that ran between a reservation and the file's
        #: appearance would forget the reservation and let the next one
        #: take the spool over its cap.
        self._lock = threading.RLock()

    def ensure_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def bytes(self) -> int:
        """What the spool holds, as of the last scan and this process's writes."""
        if not self._scanned:
            self.refresh()
        return self._bytes

    @property
    def full(self) -> bool:
        """At the cap: another journal segment, or the last write the cap
        refused (a failed batch can be bigger than a segment), would take the
        spool over it."""
        if self.max_bytes is None:
            return False
        held = self.bytes
        if self._refused and held + self._refused <= self.max_bytes:
            self._refused = 0  # replay made room for it
        return held + max(self.segment_bytes, self._refused) > self.max_bytes

    def refresh(self) -> SpoolUsage:
        """Scan the directory: what it holds now."""
        with self._lock:
            usage = self.usage()
            self._bytes, self._scanned = usage.bytes, True
        return usage

    def _reserve(self, size: int) -> None:
        if self.max_bytes is not None and self.bytes + size > self.max_bytes:
            self._refused = size
            raise SpoolFull(f"the spool holds {self._bytes:,} bytes; its cap is {self.max_bytes:,} "
                            "(EXECLOG_SPOOL_MAX_BYTES)")
        self._bytes += size

    @property
    def segment_bytes(self) -> int:
        """The size of a journal segment: 4 MiB, or a quarter of the cap."""
        if self.max_bytes is None:
            return SEGMENT_BYTES
        return max(mmap.PAGESIZE, min(SEGMENT_BYTES, self.max_bytes // 4 // mmap.PAGESIZE * mmap.PAGESIZE))

    def new_segment(self, capacity: int = SEGMENT_BYTES) -> SpoolSegment:
        with self._lock:
            self._reserve(capacity)
            try:
                self.ensure_directory()
                segment = SpoolSegment(self.directory, capacity)
            except BaseException:
                self._bytes -= capacity
                raise
        self._owned.add(segment)
        return segment

    def write_rows(self, rows: Sequence[bytes]) -> None:
        """Write rows (wire bytes) as one finished segment, ready for replay."""
        data = spool_lines(rows)
        segment = self.new_segment(capacity=len(data))
        segment.append(data)
        segment.finish(keep=True)

    def segment_paths(self) -> list[Path]:
        """Every finished-or-open segment, oldest first."""
        try:
            entries = os.scandir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        with entries:
            names = sorted(e.name for e in entries if e.name.endswith(SEGMENT_SUFFIX))
        return [self.directory / name for name in names]

    def claimable(self) -> Iterator[ClaimedSegment]:
        """Lock and yield, oldest first, each segment nobody holds.

        The caller must ``delete()`` or ``release()`` each one it gets.
        """
        for path in self.segment_paths():
            claimed = self._try_claim(path)
            if claimed is not None:
                yield claimed

    def _try_claim(self, path: Path) -> ClaimedSegment | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if os.fstat(fd).st_nlink == 0:  # replayed and deleted meanwhile
            os.close(fd)
            return None
        return ClaimedSegment(path, fd)

    def usage(self) -> SpoolUsage:
        """Segments (their count) and the bytes of everything the spool holds."""
        count = size = 0
        for path in self.segment_paths():
            try:
                size += path.stat().st_size
            except FileNotFoundError:
                continue
            count += 1
        return SpoolUsage(count, size + self._corrupt_bytes())

    def _corrupt_bytes(self) -> int:
        try:
            entries = os.scandir(self.directory / CORRUPT_DIR)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        with entries:
            return sum(e.stat().st_size for e in entries if e.is_file())

    def keep_bad_lines(self, source: Path, lines: list[bytes]) -> Path:
        """Set aside lines that are not rows, for a person to look at;
        :class:`SpoolFull` when that would take the spool over its cap."""
        data = b"\n".join(lines) + b"\n"
        corrupt = self.directory / CORRUPT_DIR
        target = corrupt / (source.stem + ".bad")
        with self._lock:
            self._reserve(len(data))
            corrupt.mkdir(parents=True, exist_ok=True)
            with open(target, "ab") as stream:
                stream.write(data)
        return target

    def after_fork(self) -> None:
        for segment in list(self._owned):
            if segment.pid != os.getpid():
                segment.abandon_after_fork()
        self._owned = weakref.WeakSet()
        self._lock = threading.RLock()


#: How long the active journal segment must have taken no record, all it
#: holds shipped, before the flusher closes it (ticks come at least every
#: second, so a quiet process's segment goes within about two).
QUIET_SECONDS = 1.0


@dataclass(eq=False, slots=True)
class JournalEntry:
    """A journal segment and the bookkeeping that says when it may go."""

    segment: SpoolSegment
    written: int = 0
    #: Records whose fate is settled: shipped (published or not), or never
    #: held in memory in the first place.
    settled: int = 0
    #: Some record in it may not have been published: replay it.
    unpublished: bool = False
    #: Some record in it was never held in memory: replay it.
    spilled: bool = False
    sealed: bool = False
    #: ``written`` at the flusher's previous tick, and when a tick last
    #: found it changed (monotonic): how long the segment has been quiet.
    written_at_tick: int = 0
    changed_at: float = 0.0

    @property
    def done(self) -> bool:
        return self.sealed and self.settled >= self.written

    def line_at(self, start: int) -> bytes | None:
        return self.segment.line_at(start)

    @property
    def keep(self) -> bool:
        return self.unpublished or self.spilled


def journaled_batch(records: Sequence[LogRecord]) -> RowBatch:
    """The rows of records the journal holds, read back from their segment:
    in one slice when they lie there one after the other (records are
    journaled in buffer order, so a chunk does unless the segment rotated
    within it or a record that went to the journal alone sits between), else
    a line at a time."""
    first = records[0]
    entry = first.journal_entry
    if entry is not None and list(map(_entry_of, records)).count(entry) == len(records):
        view = entry.segment.view
        try:
            end = -1 if view is None else view.find(b"\n", records[-1].journal_at) + 1
            data = None if view is None else view[first.journal_at:end]
        except ValueError:  # closed meanwhile
            data = None
        if data is not None and data.count(b"\n") == len(records):
            return RowBatch(data[:-1].replace(b"\n", b","), records)
    return RowBatch.of_rows([record.wire_bytes() for record in records])


_entry_of = attrgetter("journal_entry")


class SpoolJournal:
    """Appends records one by one to this process's segments.

    Used for ``EXECLOG_DURABILITY=disk`` (every record, written by ``log()``
    under the buffer's lock) and for records that overflow the memory buffer
    (``in_memory=False``). Each record remembers its :class:`JournalEntry`;
    when the flusher has shipped a batch it calls :meth:`settle`, and a
    segment whose records are all settled is deleted when every one was
    published, or left for replay otherwise.

    What ``log()`` pays is a copy into a page that is already mapped and
    writable: the flusher keeps the next segment ready and prefaulted
    (:meth:`tick`, asked for as soon as the spare is taken), rotates by size
    (4 MiB) and once all a segment holds is settled, and, with
    ``fsync_interval``, writes the active segment to the disk that often. A
    write that fails is counted in ``failed`` and reported, never raised into
    ``log()``; ``full`` says when the spool's cap refused it.
    """

    def __init__(self, spool: Spool, on_error: Any = None, *, keep_spare: bool = True,
                 fsync_interval: float = 0.0) -> None:
        self._spool = spool
        self._on_error = on_error
        #: Keep the next segment ready (disk mode: every log() writes). The
        #: overflow journal of memory mode writes rarely: no spare file.
        self._keep_spare = keep_spare
        self.fsync_interval = fsync_interval
        self._reset()

    def _reset(self) -> None:
        #: Held by every write: the buffer of ``EXECLOG_DURABILITY=disk``
        #: takes it as its own lock and writes under it (the common case
        #: itself, :meth:`write_line` otherwise), so that a record is
        #: stamped, buffered and journaled under one lock.
        self.lock = self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque()  # oldest first, the active one last
        #: The segment being written (None: the next write makes one).
        self.active: JournalEntry | None = None
        self._spare: SpoolSegment | None = None
        self._next_sync = 0.0
        self.failed = 0
        #: The flusher should call tick() soon (the spare was taken).
        self.wants_tick = False
        #: Called when the spare is taken (the buffer sets it: it wakes the
        #: flusher, which makes the next spare).
        self.on_rotate: Any = None

    @property
    def full(self) -> bool:
        return self._spool.full

    def write(self, record: LogRecord, in_memory: bool) -> bool:
        """Append one record (taking the lock); False when it could not be
        written (counted, reported, never raised)."""
        line = encode_record(record, record.limits)
        with self._lock:
            return self.write_line(record, line, in_memory)

    def write_line(self, record: LogRecord, line: bytes, in_memory: bool) -> bool:
        """Append ``record``'s encoded ``line``, with :attr:`lock` held by the
        caller, rotating to the next segment when it does not fit.

        ``JournaledBuffer.append`` does the common case (the line fits the
        active segment) itself, inline; keep the two in step. A record kept
        in memory remembers where its line is, and the flusher reads it back
        from there: keeping the line in each buffered record instead made a
        disk-mode log() call twice as slow (bench/log_call.py: the flusher
        frees those lines on the other core, and the callers' next
        allocations miss the cache)."""
        entry = self.active
        segment = None if entry is None else entry.segment
        start = 0 if segment is None else segment.size
        end = start + len(line)
        if segment is None or end > segment.capacity:
            try:
                entry = self._rotate(len(line))
            except OSError as exc:
                self.failed += 1
                record.encoded = line  # what it was at log(), if memory keeps it
                if self._on_error is not None:
                    self._on_error(exc)
                return False
            segment = entry.segment
            start, end = 0, len(line)
        segment.view[start:end] = line  # type: ignore[index]
        segment.size = end
        entry.written += 1
        if in_memory:
            record.journal_entry = entry
            record.journal_at = start
        else:
            entry.settled += 1
            entry.spilled = True
        return True

    def _rotate(self, at_least: int) -> JournalEntry:
        """Seal the active segment and start the next (under the lock)."""
        if self.active is not None:
            self.active.sealed = True
        segment, self._spare = self._spare, None
        if segment is None or segment.capacity < at_least:
            if segment is not None:
                segment.finish(keep=False)
            segment = self._spool.new_segment(max(self._spool.segment_bytes, at_least))
        self.active = JournalEntry(segment)
        self._entries.append(self.active)
        if self._keep_spare:
            self.wants_tick = True
            if self.on_rotate is not None:
                self.on_rotate()
        return self.active

    def settle(self, records: Any, published: bool) -> None:
        """The flusher shipped ``records`` (published or not). Counted per
        segment first, so that the lock ``log()`` also takes is held for a
        few updates, not for a walk over the batch."""
        counts: dict[JournalEntry, int] = {}
        for record in records:
            entry = record.journal_entry
            if entry is not None:
                counts[entry] = counts.get(entry, 0) + 1
        with self._lock:
            for entry, count in counts.items():
                entry.settled += count
                if not published:
                    entry.unpublished = True
            done = self._pop_done()
        for entry in done:
            entry.segment.finish(keep=entry.keep)

    def tick(self) -> None:
        """Flusher housekeeping: close the active segment once all it holds
        is settled and nothing came for ``QUIET_SECONDS`` (so published
        records do not linger on disk once the process is quiet), get the
        next segment ready, and sync the active one when it is time.

        A busy process keeps writing into its segment until it is full: the
        flusher ticks after every batch, and closing the segment whenever
        everything was shipped made a new 4 MiB segment (created and
        prefaulted) for every batch at a steady rate, some 40 to 90 us of
        flusher CPU a record (``make bench``, 100 requests/s). What a killed
        busy process leaves is replayed, and what was already stored is
        skipped by the insert (``ON CONFLICT DO NOTHING``)."""
        self.wants_tick = False
        now = time.monotonic()
        with self._lock:
            active = self.active
            if active is not None and active.written != active.written_at_tick:
                active.written_at_tick, active.changed_at = active.written, now
            elif active is not None and active.written and active.settled >= active.written \
                    and now - active.changed_at >= QUIET_SECONDS:
                active.sealed = True
                self.active = None
            done = self._pop_done()
            need_spare = self._keep_spare and self._spare is None
        for entry in done:
            entry.segment.finish(keep=entry.keep)
        if need_spare:
            self._prepare_spare()
        if self.fsync_interval and time.monotonic() >= self._next_sync:
            self._next_sync = time.monotonic() + self.fsync_interval
            self.sync()

    def sync(self) -> None:
        """Write the open segments to the disk (``EXECLOG_FSYNC=interval``)."""
        with self._lock:
            segments = [entry.segment for entry in self._entries]
        for segment in segments:
            try:
                segment.sync()
            except (OSError, ValueError):  # finished meanwhile: nothing left to sync
                pass

    def _pop_done(self) -> list[JournalEntry]:
        done = []
        while self._entries and self._entries[0].done:
            done.append(self._entries.popleft())
        return done

    def _prepare_spare(self) -> None:
        try:
            spare = self._spool.new_segment(self._spool.segment_bytes)
            spare.prefault()
        except OSError:
            return  # write() will try again, and count the failure
        with self._lock:
            if self._spare is None:
                self._spare = spare
                return
        spare.finish(keep=False)

    def close(self) -> None:
        """Finish every segment: what is not settled and published is kept."""
        with self._lock:
            entries, self._entries, self.active = list(self._entries), deque(), None
            spare, self._spare = self._spare, None
        for entry in entries:
            if self.fsync_interval:
                entry.segment.sync()
            entry.segment.finish(keep=entry.keep or entry.settled < entry.written)
        if spare is not None:
            spare.finish(keep=False)

    def after_fork(self) -> None:
        """In a forked child: the parent's segments stay the parent's."""
        for entry in self._entries:
            entry.segment.abandon_after_fork()
        if self._spare is not None:
            self._spare.abandon_after_fork()
        self._reset()
