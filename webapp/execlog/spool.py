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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .record import LogRecord
from .wire import read_spooled_line, spool_lines

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
_TMP_SUFFIX = ".tmp"
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
            self._map: mmap.mmap | None = mmap.mmap(self._fd, capacity)
            os.rename(tmp_path, self.path)
        except BaseException:
            os.close(self._fd)
            os.unlink(tmp_path)
            raise

    def try_append(self, data: bytes) -> bool:
        """Copy ``data`` in; False (and nothing written) when it does not fit."""
        end = self.size + len(data)
        if self._map is None or end > self.capacity:
            return False
        self._map[self.size : end] = data
        self.size = end
        return True

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
        if self._map is not None:
            self._map.close()
            self._map = None
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


class Spool:
    """The spool directory of one host."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._owned: weakref.WeakSet[SpoolSegment] = weakref.WeakSet()

    def ensure_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def new_segment(self, capacity: int = SEGMENT_BYTES) -> SpoolSegment:
        self.ensure_directory()
        segment = SpoolSegment(self.directory, capacity)
        self._owned.add(segment)
        return segment

    def write_rows(self, rows: list[bytes]) -> None:
        """Write rows (wire bytes) as one finished segment, ready for replay."""
        data = spool_lines(rows)
        segment = self.new_segment(capacity=len(data))
        segment.try_append(data)
        segment.finish(keep=True)

    def segment_paths(self) -> list[Path]:
        """Every finished-or-open segment, oldest first."""
        try:
            entries = os.scandir(self.directory)
        except FileNotFoundError:
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
        count = size = 0
        for path in self.segment_paths():
            try:
                size += path.stat().st_size
            except FileNotFoundError:
                continue
            count += 1
        return SpoolUsage(count, size)

    def keep_bad_lines(self, source: Path, lines: list[bytes]) -> Path:
        """Set aside lines that are not rows, for a person to look at."""
        corrupt = self.directory / "corrupt"
        corrupt.mkdir(parents=True, exist_ok=True)
        target = corrupt / (source.stem + ".bad")
        with open(target, "ab") as stream:
            stream.write(b"\n".join(lines) + b"\n")
        return target

    def after_fork(self) -> None:
        for segment in list(self._owned):
            if segment.pid != os.getpid():
                segment.abandon_after_fork()
        self._owned = weakref.WeakSet()


@dataclass(eq=False)
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

    @property
    def done(self) -> bool:
        return self.sealed and self.settled >= self.written

    @property
    def keep(self) -> bool:
        return self.unpublished or self.spilled


class SpoolJournal:
    """Appends records one by one to this process's segments.

    Used for ``EXECLOG_DURABILITY=disk`` (every record, written by ``log()``
    under the buffer's lock) and for records that overflow the memory buffer
    (``in_memory=False``). Each record remembers its :class:`JournalEntry`;
    when the flusher has shipped a batch it calls :meth:`settle`, and a
    segment whose records are all settled is deleted when every one was
    published, or left for replay otherwise. Segments rotate by size (4 MiB)
    and on :meth:`tick` once all they hold is settled; the flusher prepares
    the next one ahead of time. A write that fails is counted in ``failed``
    and reported, never raised into ``log()``: the record is still in memory.
    """

    def __init__(self, spool: Spool, on_error: Any = None, *, keep_spare: bool = True) -> None:
        self._spool = spool
        self._on_error = on_error
        #: Keep the next segment ready (disk mode: every log() writes). The
        #: overflow journal of memory mode writes rarely: no spare file.
        self._keep_spare = keep_spare
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque()  # oldest first, the active one last
        self._active: JournalEntry | None = None
        self._spare: SpoolSegment | None = None
        self.failed = 0

    def write(self, record: LogRecord, *, in_memory: bool) -> bool:
        data = record.wire_bytes() + b"\n"
        with self._lock:
            entry = self._active
            try:
                if entry is None or not entry.segment.try_append(data):
                    entry = self._rotate(len(data))
                    entry.segment.try_append(data)
            except OSError as exc:
                self.failed += 1
                if self._on_error is not None:
                    self._on_error(exc)
                return False
            entry.written += 1
            if in_memory:
                record.journal_entry = entry
            else:
                entry.settled += 1
                entry.spilled = True
            return True

    def _rotate(self, at_least: int) -> JournalEntry:
        """Seal the active segment and start the next (under the lock)."""
        if self._active is not None:
            self._active.sealed = True
        segment, self._spare = self._spare, None
        if segment is None or segment.capacity < at_least:
            if segment is not None:
                segment.finish(keep=False)
            segment = self._spool.new_segment(max(SEGMENT_BYTES, at_least))
        self._active = JournalEntry(segment)
        self._entries.append(self._active)
        return self._active

    def settle(self, records: Any, published: bool) -> None:
        """The flusher shipped ``records`` (published or not)."""
        with self._lock:
            for record in records:
                entry = record.journal_entry
                if entry is not None:
                    entry.settled += 1
                    if not published:
                        entry.unpublished = True
            done = self._pop_done()
        for entry in done:
            entry.segment.finish(keep=entry.keep)

    def tick(self) -> None:
        """Flusher housekeeping: close the active segment once all it holds
        is settled (so published records do not linger on disk), and get
        the next segment ready."""
        with self._lock:
            active = self._active
            if active is not None and active.written and active.settled >= active.written:
                active.sealed = True
                self._active = None
            done = self._pop_done()
            need_spare = self._keep_spare and self._spare is None
        for entry in done:
            entry.segment.finish(keep=entry.keep)
        if need_spare:
            self._prepare_spare()

    def _pop_done(self) -> list[JournalEntry]:
        done = []
        while self._entries and self._entries[0].done:
            done.append(self._entries.popleft())
        return done

    def _prepare_spare(self) -> None:
        try:
            spare = self._spool.new_segment()
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
            entries, self._entries, self._active = list(self._entries), deque(), None
            spare, self._spare = self._spare, None
        for entry in entries:
            entry.segment.finish(keep=entry.keep or entry.settled < entry.written)
        if spare is not None:
            spare.finish(keep=False)

    def after_fork(self) -> None:
        """In a forked child: the parent's segments stay the parent's."""
        for entry in self._entries:
            entry.segment.abandon_after_fork()
        if self._spare is not None:
            self._spare.abandon_after_fork()
        self._lock = threading.Lock()
        self._entries = deque()
        self._active = None
        self._spare = None
