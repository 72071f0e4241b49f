"""Time-ordered record ids: UUIDv7 (RFC 9562), strictly increasing per process.

The id is the idempotency key of the whole pipeline, so it must be unique
across processes and hosts and, within one process, increase in the order
records were logged, so that records stamped in the same instant still sort
in that order.

The buffer claims a stamp, ``(time_ns, counter)``, under its lock and stores
the id as 32 hex digits (:func:`uuid7_hex`):

    48 bits Unix milliseconds | 4 bits version (7) | 12 bits sub-millisecond
    fraction (RFC 9562 "method 3") | 2 bits variant (0b10) | 62 bits counter

The counter starts at a random 61-bit value in each process (so two processes
do not collide: the chance is that of two random 61-bit numbers meeting in
the same 244 ns) and grows by one per record, never reaching the variant
bits. A clock that steps back is held at its last value, so time and counter
never both go backwards.
"""

from __future__ import annotations

import os
import time
import uuid

#: The clock stamps read (a name of its own, so tests can set it).
_time_ns = time.time_ns
#: The version nibble, in place in the high 64 bits.
VERSION = 0x7000
#: The variant bits, in place in the low 64 bits.
VARIANT = 0x2 << 62


def _random_counter_start() -> int:
    return int.from_bytes(os.urandom(8), "big") >> 3


class MonotonicStamp:
    """Hands out ``(time_ns, counter)`` pairs that only ever increase.

    Not thread-safe by itself: the buffer takes the next stamp with
    :meth:`peek` before its lock and claims it under the lock (see "The lock
    and the GIL" in :mod:`.buffer`), or calls :meth:`next` there when
    another thread claimed one meanwhile; claiming under the lock is also
    what makes id order equal to buffer order. A new instance (made in a
    forked child) starts a new random counter.
    """

    __slots__ = ("last_ns", "counter")

    def __init__(self) -> None:
        #: The time of the last stamp (ns since the epoch).
        self.last_ns = 0
        #: The counter of the last stamp.
        self.counter = _random_counter_start()

    def next(self) -> tuple[int, int]:
        now = _time_ns()
        if now < self.last_ns:
            now = self.last_ns
        self.last_ns = now
        self.counter += 1
        return now, self.counter

    def peek(self) -> tuple[int, int, str]:
        """The next stamp, not taken: its time, its counter and its UUIDv7 as
        32 hex digits (:func:`uuid7_hex`, inline: ``log()`` pays it). The
        buffer claims it under its lock by setting :attr:`last_ns` and
        :attr:`counter` to it, if :attr:`counter` has not moved meanwhile."""
        now = _time_ns()
        if now < self.last_ns:
            now = self.last_ns
        counter = self.counter + 1
        ms, sub_ns = divmod(now, 1_000_000)
        return now, counter, "%032x" % (
            (((ms << 16) | VERSION | ((sub_ns * 4096) // 1_000_000)) << 64) | VARIANT | counter
        )


def uuid7_int(time_ns: int, counter: int) -> int:
    """The UUIDv7 of a stamp, as a 128-bit integer."""
    ms, sub_ns = divmod(time_ns, 1_000_000)
    high = (ms << 16) | VERSION | ((sub_ns * 4096) // 1_000_000)
    return (high << 64) | VARIANT | counter


def uuid7_hex(time_ns: int, counter: int) -> str:
    """The UUIDv7 of a stamp, as the 32 hex digits records carry."""
    return "%032x" % uuid7_int(time_ns, counter)


def format_hex_uuid(h: str) -> str:
    """The canonical 8-4-4-4-12 form of 32 hex digits."""
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def format_uuid(value: int) -> str:
    """The canonical 8-4-4-4-12 form of a 128-bit integer."""
    return format_hex_uuid("%032x" % value)


def uuid7_time_ms(value: str | uuid.UUID) -> int:
    """The Unix milliseconds embedded in a UUIDv7."""
    as_int = value.int if isinstance(value, uuid.UUID) else uuid.UUID(value).int
    return as_int >> 80
