"""Wait on a condition with a bounded timeout (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    pass


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy; return that.

    Raises :class:`TimedOut` (an AssertionError) with the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimedOut(f"timed out after {timeout} s waiting for {message}; last value: {last!r}")
        time.sleep(interval)


#: The statuses an execution ends in.
FINAL_STATUSES = ("succeeded", "failed")


def wait_for_execution(read: Callable[[], dict[str, Any]], execution_id: str,
                       statuses: tuple[str, ...] = FINAL_STATUSES, timeout: float = 60.0) -> dict[str, Any]:
    """The execution as ``read`` gives it (the API, a table), once its
    status is one of ``statuses``."""
    def reached() -> dict[str, Any] | None:
        execution = read()
        return execution if execution["status"] in statuses else None

    return wait_for(reached, timeout=timeout, interval=0.2, message=f"execution {execution_id} in {statuses}")
