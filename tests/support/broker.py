"""Look into a Redis queue the way the worker would read it."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis


class QueueReader:
    """Reads (without consuming) the Celery messages waiting in a queue."""

    def __init__(self, redis_url: str, queue: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.queue = queue

    def __len__(self) -> int:
        return int(self.client.llen(self.queue))

    def messages(self) -> list[dict[str, Any]]:
        """Oldest first: each with ``task``, ``args`` and ``kwargs``."""
        found = []
        for raw in reversed(self.client.lrange(self.queue, 0, -1)):
            envelope = json.loads(raw)
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, kwargs, _embed = json.loads(body)
            found.append({"task": envelope["headers"]["task"], "args": args, "kwargs": kwargs})
        return found

    def batches(self) -> list[list[list[Any]]]:
        """The rows of every log batch in the queue, one list per message."""
        return [message["args"][1] for message in self.messages()]

    def clear(self) -> None:
        self.client.delete(self.queue)
