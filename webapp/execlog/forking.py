"""Fork safety: reset an object's process-local state in a forked child."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def call_in_forked_children(obj: T, method: Callable[[T], None]) -> None:
    """Call ``method(obj)`` in every child forked from now on, while ``obj``
    lives (a weak reference: the hook does not keep it alive).

    ``os.register_at_fork`` runs in the child right after ``fork()``, before
    any other code, so locks held by other threads of the parent at the
    moment of the fork are replaced before anyone waits on them.
    """
    ref = weakref.ref(obj)

    def reset() -> None:
        alive = ref()
        if alive is not None:
            method(alive)

    os.register_at_fork(after_in_child=reset)
