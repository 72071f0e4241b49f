"""What an operator looks at: the backlog of the ``logs`` queue and the spool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery


def queue_length(celery: Celery, queue: str) -> int:
    """Messages waiting in ``queue`` (``LLEN logs`` on Redis).

    Raises the broker's connection error when it cannot be reached.
    """
    from amqp.exceptions import ChannelError

    with celery.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, timeout=3)
        channel = connection.default_channel
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError as exc:
            # Redis keeps no empty list: an empty queue "does not exist".
            if str(exc.reply_code) == "404":
                return 0
            raise


def rejected_count(celery: Celery, queue: str) -> tuple[int, int | None] | None:
    """Items set aside from ``queue`` as not being messages: how many
    ``<queue>.rejected`` keeps, and how many there have been (Redis counts
    them; on RabbitMQ, where it holds dead letters too, None). None for
    another broker."""
    from .broker import Channel, rejected_counter, rejected_list

    with celery.connection_for_read() as connection:
        channel = connection.default_channel
        if isinstance(channel, Channel):
            kept = int(channel.client.llen(rejected_list(queue)))
            return kept, int(channel.client.get(rejected_counter(queue)) or 0)
        if connection.transport.driver_type == "amqp":
            return queue_length(celery, rejected_list(queue)), None
        return None


NOT_PERSISTENT = ("the Redis broker keeps nothing on disk (appendonly no, no save points): queued "
                  "log batches and workflow jobs do not survive its restart; set appendonly yes")


def broker_persistence(celery: Celery) -> dict[str, Any] | None:
    """Whether the Redis broker keeps its queues on disk (``appendonly`` or
    ``save`` points), or None for a broker that is not Redis.

    ``{"persistent": None}`` where Redis refuses ``CONFIG GET`` (managed
    services rename it): not known, not a warning."""
    from kombu.transport.redis import Channel
    from redis.exceptions import ResponseError

    with celery.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, timeout=3)
        channel = connection.default_channel
        if not isinstance(channel, Channel):  # kombu's, as rediss:// uses, or the project's subclass
            return None
        try:
            appendonly = channel.client.config_get("appendonly").get("appendonly")
            save = channel.client.config_get("save").get("save")
        except ResponseError as exc:
            return {"persistent": None, "detail": f"CONFIG GET refused: {exc}"}
    persistent = appendonly == "yes" or bool((save or "").strip())
    found: dict[str, Any] = {"persistent": persistent, "appendonly": appendonly, "save": save}
    if not persistent:
        found["warning"] = NOT_PERSISTENT
    return found


def status(logger: Any, celery: Celery | None) -> dict[str, Any]:
    """The logger's counters, with the queue backlog and the spool's size."""
    settings = logger.settings
    result: dict[str, Any] = dict(logger.status())
    if celery is not None and settings is not None and settings.backend == "celery":
        try:
            result["queue_length"] = queue_length(celery, settings.queue)
            rejected = rejected_count(celery, settings.queue)
            result["queue_rejected"], result["queue_rejected_total"] = rejected or (None, None)
            persistence = broker_persistence(celery)
            if persistence is not None:
                result["broker_persistent"] = persistence["persistent"]
                if "warning" in persistence:
                    result["broker_warning"] = persistence["warning"]
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            result["queue_length"] = None
            result["queue_error"] = f"{type(exc).__name__}: {exc}"
    return result
