"""How many event streams a process serves at once, and for how long.

A stream holds a gunicorn thread for as long as it is open, and threads
are few (``GUNICORN_THREADS`` per process, 8 by default): 40 streams on a
queued execution took every thread of the default 2 x 8 and ``/healthz``
timed out. So each process serves at most ``API_SSE_MAX_STREAMS`` streams
(the other threads stay for ordinary requests: ``docker/gunicorn.conf.py``
makes it half the threads unless it is set, and refuses to start with no
thread left for them, :func:`stream_threads_problem`), each token at
most ``API_SSE_MAX_STREAMS_PER_TOKEN`` of them, and a stream ends after
``API_SSE_MAX_SECONDS`` (the client resumes with ``Last-Event-ID``, as
EventSource does by itself). A stream beyond a cap is refused at once: 503
(the process is full) or 429 (the token is), with ``Retry-After``: when the
oldest stream in the way reaches its end of life.

The counts are per process: with ``WEB_CONCURRENCY`` processes a host
serves up to that many times the caps.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from .errors import Problem
from .settings import ApiSettings

EXTENSION_KEY = "api_streams"


@dataclass(eq=False)
class Lease:
    """One open stream; :meth:`release` (idempotent) gives its slot back."""

    slots: StreamSlots
    key: str | None
    ends_at: float
    released: bool = field(default=False)

    def release(self) -> None:
        self.slots.release(self)


class StreamSlots:
    def __init__(self, max_streams: int, max_per_key: int, max_seconds: float) -> None:
        self.max_streams = max_streams
        self.max_per_key = max_per_key
        self.max_seconds = max_seconds
        self._open: list[Lease] = []
        self._lock = threading.Lock()

    def acquire(self, key: str | None) -> Lease:
        """A slot for a stream of caller ``key`` (None: no per-caller cap),
        or a ``Problem`` (503 or 429, with ``Retry-After``)."""
        now = time.monotonic()
        with self._lock:
            if len(self._open) >= self.max_streams:
                raise self._refusal(503, "streams-busy", "Too many streams", self._open, now,
                                    f"this server process serves {self.max_streams} event streams at once "
                                    "(API_SSE_MAX_STREAMS) and all are taken")
            mine = [lease for lease in self._open if key is not None and lease.key == key]
            if len(mine) >= self.max_per_key:
                raise self._refusal(429, "too-many-streams", "Too many streams", mine, now,
                                    f"this token has {len(mine)} event streams open on this server process, "
                                    f"the most it may (API_SSE_MAX_STREAMS_PER_TOKEN)")
            lease = Lease(self, key, now + self.max_seconds)
            self._open.append(lease)
            return lease

    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def release(self, lease: Lease) -> None:
        with self._lock:
            if not lease.released:
                lease.released = True
                self._open.remove(lease)

    @staticmethod
    def _refusal(status: int, slug: str, title: str, holding: list[Lease], now: float,
                 detail: str) -> Problem:
        wait = max(1, math.ceil(min(lease.ends_at for lease in holding) - now))
        return Problem(status, slug, title, f"{detail}; retry in {wait} s",
                       headers={"Retry-After": str(wait)})


def slots_from(settings: ApiSettings) -> StreamSlots:
    return StreamSlots(settings.sse_max_streams, settings.sse_max_streams_per_token, settings.sse_max_seconds)


def current_slots() -> StreamSlots:
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


def stream_threads_problem(config: Mapping[str, Any], worker_class: str, threads: int) -> str | None:
    """Why gunicorn must not start with these settings (no thread left for
    ordinary requests once the streams are open), or None."""
    if "gthread" not in worker_class.lower() and "threadworker" not in worker_class.lower():
        return None
    streams = ApiSettings.from_config(config).sse_max_streams
    if streams < threads:
        return None
    return (f"API_SSE_MAX_STREAMS ({streams}) must be below GUNICORN_THREADS ({threads}): streams would "
            "take every thread of a worker and leave none for other requests")
