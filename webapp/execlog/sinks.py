"""Where a batch of wire rows goes: the Celery queue, or the database.

A sink's ``send(rows)`` returns when the rows are safe at the other end (the
broker accepted the message, or the transaction committed) and raises
otherwise; the caller (:class:`~.delivery.Delivery`) decides what happens next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .record import WIRE_VERSION

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.engine import Engine

INSERT_BATCH_TASK = "execlog.insert_batch"

#: How long one publish may keep trying before the batch goes to the spool.
#: Short on purpose: the spool is the retry mechanism, not the publisher.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.1,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


class Sink(Protocol):
    name: str

    def send(self, rows: list[list[Any]]) -> None: ...

    def after_fork(self) -> None:
        """Drop connections inherited from the parent process."""


class CelerySink:
    """Publishes a batch as one ``execlog.insert_batch`` task message.

    The message is ``(WIRE_VERSION, rows)``: rows are JSON arrays, not
    objects, because the producer pays the encoding in its request threads'
    GIL time and the size on the wire.
    """

    name = "celery"

    def __init__(self, celery: Celery, *, queue: str = "logs") -> None:
        self.celery = celery
        self.queue = queue

    def send(self, rows: list[list[Any]]) -> None:
        self.celery.send_task(
            INSERT_BATCH_TASK,
            args=(WIRE_VERSION, rows),
            queue=self.queue,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            ignore_result=True,
            # Celery would otherwise walk every row to build a repr for the
            # message headers (Flower's display): over half the publish CPU.
            argsrepr=f"({WIRE_VERSION}, <{len(rows)} rows>)",
            kwargsrepr="{}",
        )

    def after_fork(self) -> None:
        """Celery resets its own producer pool in a forked child."""


class DatabaseSink:
    """Inserts a batch itself, on an engine of its own (one connection).

    Used by the ``thread`` back end and by ``EXECLOG_FALLBACK=database``; the
    web tier's pool is never touched.
    """

    name = "database"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def send(self, rows: list[list[Any]]) -> None:
        from .store import store_rows

        store_rows(self.engine, rows)

    def after_fork(self) -> None:
        self.engine.dispose(close=False)
