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

    def envelopes(self) -> list[dict[str, Any]]:
        """Oldest first: the messages as Redis holds them."""
        return [json.loads(raw) for raw in reversed(self.client.lrange(self.queue, 0, -1))]

    def messages(self) -> list[dict[str, Any]]:
        """Oldest first: each with ``task``, ``args``, ``kwargs`` and ``headers``."""
        found = []
        for envelope in self.envelopes():
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, kwargs, _embed = json.loads(body)
            found.append({"task": envelope["headers"]["task"], "args": args, "kwargs": kwargs,
                          "headers": envelope["headers"]})
        return found

    def batches(self) -> list[list[list[Any]]]:
        """The rows of every log batch in the queue, one list per message."""
        return [message["args"][1] for message in self.messages()]

    def clear(self) -> None:
        self.client.delete(self.queue)
