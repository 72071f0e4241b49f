"""Items on the logs queue that are not batches: the worker keeps running and
keeps them, with the reason, where a person can look."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis

from ..support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")


def envelope(body: bytes, headers: dict, tag: str) -> str:
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": headers,
        "properties": {"body_encoding": "base64", "delivery_tag": tag,
                       "delivery_info": {"exchange": "", "routing_key": "logs"}},
    })


def test_garbage_on_the_logs_queue_is_set_aside_and_the_worker_goes_on(
    app, redis_url, celery_worker, log_table, trace_id
):
    client = redis.Redis.from_url(redis_url)
    marker = uuid.uuid4().hex
    items = {
        f"garbage bytes {marker} \xff": "not JSON",
        json.dumps([marker]): "a message is a JSON object, not list",
        json.dumps({"body": marker}): "no properties.delivery_tag",
        envelope(f"not json {marker}".encode(), {"task": "execlog.insert_batch", "id": marker},
                 marker + "1"): "body cannot be decoded",
        envelope(b"[[], {}, {}]", {"task": "no.such.task", "id": marker}, marker + "2"): "unknown task",
        envelope(b"[[], {}, {}]", {"id": marker}, marker + "3"): "not a task message",
    }
    client.delete("logs.rejected")
    for item in items:
        client.lpush("logs", item.encode("utf-8", "surrogateescape") if isinstance(item, str) else item)

    def rejected() -> list[dict]:
        return [json.loads(raw) for raw in client.lrange("logs.rejected", 0, -1)]

    found = wait_for(lambda: len(rejected()) == len(items) and rejected(), timeout=30,
                     message="every item set aside")
    for item, reason in items.items():
        assert any(reason in entry["reason"] and marker in entry["raw"] for entry in found), reason
    assert celery_worker.alive()

    logger = app.extensions["execlog"]
    logger.info(trace_id, "api", "after the garbage")
    assert logger.flush(timeout=10)
    log_table.wait_for_count(trace_id, 1)

    status = app.test_cli_runner().invoke(args=["execlog", "status", "--json"])
    assert json.loads(status.output)["queue_rejected"] == len(items)
    client.delete("logs.rejected")
