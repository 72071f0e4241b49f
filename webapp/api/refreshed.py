"""A value read again at most every so often, never under a lock.

The token store's hashes and ``/readyz``'s verdict both come from a
database (and, for ``/readyz``, a broker and the workers) that may be slow
or hang. Reading them under a lock, as the token store did, made every
request of the process wait behind one stuck read. Here one caller at a
time reads, outside any lock, and every other caller meanwhile gets the
value read last; only before the first read has ended do callers wait for
it, and then for ``first_wait`` seconds at most.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class Refreshed(Generic[T]):
    """``get()`` the value ``load`` returns, re-read once ``max_age``
    seconds old. A ``load`` that raises keeps the value read before (and
    is tried again ``max_age`` later)."""

    def __init__(self, load: Callable[[], T], max_age: float, first_wait: float, what: str) -> None:
        self._load = load
        self._max_age = max_age
        self._first_wait = first_wait
        self._what = what
        self._value: T | None = None
        self._read_at = float("-inf")
        self._reading = False
        self._lock = threading.Lock()
        self._first_read = threading.Event()

    def get(self, max_age: float | None = None) -> T | None:
        """The value; None when it was never read (the first read failed,
        or has not ended within ``first_wait`` seconds). ``max_age``: read
        it again if it is older than that (shorter than the usual age)."""
        limit = self._max_age if max_age is None else min(max_age, self._max_age)
        with self._lock:
            due = not self._reading and time.monotonic() - self._read_at >= limit
            if due:
                self._reading = True
        if due:
            self._read()
        elif not self._first_read.is_set():
            self._first_read.wait(self._first_wait)
        return self._value

    @property
    def read_at(self) -> float:
        """``time.monotonic()`` of the last read (``-inf`` before any)."""
        return self._read_at

    def _read(self) -> None:
        try:
            value = self._load()
        except Exception as exc:  # noqa: BLE001 - the last value stays in use
            log.warning("%s cannot be read (%s); using what was read before", self._what, exc)
        else:
            self._value = value
        finally:
            with self._lock:
                self._read_at = time.monotonic()
                self._reading = False
            self._first_read.set()
