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
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .record import LogRecord

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
_TMP_SUFFIX = ".tmp"
_encode_row = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_rows(rows: list[list[Any]]) -> bytes:
    return "".join(_encode_row(row) + "\n" for row in rows).encode("utf-8")


class SpoolSegment:
    """A segment this process owns: open, locked, appended to."""

    def __init__(self, directory: Path) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp_path = directory / (name + _TMP_SUFFIX)
        self.path = directory / (name + SEGMENT_SUFFIX)
        self._fd = os.open(
            tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.rename(tmp_path, self.path)
        self.records = 0
        #: True when it holds records that are not also in memory: then it
        #: must be replayed even if the in-memory copies were published.
        self.has_spilled = False
        self.pid = os.getpid()

    def append(self, data: bytes, count: int) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.records += count

    def finish(self, published: bool) -> None:
        """Delete when every record in it was published, else leave it for
        replay (unlocked, so any producer may claim it)."""
        if published and not self.has_spilled:
            self._unlink()
        elif self.records == 0:
            self._unlink()
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the inherited descriptor without unlocking
        (the lock belongs to the parent's open file description)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class ClaimedSegment:
    """A segment some dead (or finished) writer left, locked by us to replay."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def read_rows(self) -> tuple[list[list[Any]], list[bytes]]:
        """The rows in the segment, and the lines that are not rows (a write
        cut short by a crash)."""
        with os.fdopen(os.dup(self._fd), "rb") as stream:
            data = stream.read()
        rows: list[list[Any]] = []
        bad: list[bytes] = []
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad.append(line)
                continue
            if isinstance(row, list):
                rows.append(row)
            else:
                bad.append(line)
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

    def new_segment(self) -> SpoolSegment:
        self.ensure_directory()
        segment = SpoolSegment(self.directory)
        self._owned.add(segment)
        return segment

    def write_rows(self, rows: list[list[Any]]) -> None:
        """Write rows as one finished segment, ready for replay."""
        segment = self.new_segment()
        try:
            segment.append(encode_rows(rows), len(rows))
            segment.has_spilled = True
        except BaseException:
            segment.finish(published=True)  # nothing usable in it
            raise
        segment.finish(published=False)

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


class SpoolJournal:
    """Appends records one by one to this process's open segment.

    Used for ``EXECLOG_DURABILITY=disk`` (every record, under the buffer's
    lock, sealed by the flusher at each batch) and for records that overflow
    the memory buffer. A write that fails is counted in ``failed`` and
    reported, never raised into ``log()``.
    """

    def __init__(self, spool: Spool, on_error: Any = None) -> None:
        self._spool = spool
        self._segment: SpoolSegment | None = None
        self._lock = threading.Lock()
        self._on_error = on_error
        self.failed = 0

    def write(self, record: LogRecord, *, in_memory: bool) -> bool:
        data = (_encode_row(record.to_wire()) + "\n").encode("utf-8")
        with self._lock:
            try:
                if self._segment is None:
                    self._segment = self._spool.new_segment()
                self._segment.append(data, 1)
            except OSError as exc:
                self.failed += 1
                if self._on_error is not None:
                    self._on_error(exc)
                return False
            if not in_memory:
                self._segment.has_spilled = True
            return True

    def seal(self) -> SpoolSegment | None:
        """Hand over the open segment (still locked) and start a new one on
        the next write."""
        with self._lock:
            segment, self._segment = self._segment, None
        return segment

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._segment is not None:
            self._segment.abandon_after_fork()
        self._segment = None
