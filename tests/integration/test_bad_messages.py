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


def test_the_rejected_list_stays_bounded_and_counts_everything(app, redis_url, celery_worker):
    """Whoever can write to the queue can fill it with garbage: the broker
    keeps the newest items, each cut to a bounded size, and counts them all."""
    from webapp.execlog.broker import REJECTED_KEEP, REJECTED_RAW_CHARS

    client = redis.Redis.from_url(redis_url)
    client.delete("logs.rejected", "logs.rejected.count")
    marker = uuid.uuid4().hex
    huge = f"huge {marker} " + "x" * (4 * REJECTED_RAW_CHARS)
    items = [f"garbage {n} {marker}" for n in range(REJECTED_KEEP + 5)] + [huge]
    client.lpush("logs", *items)  # taken from the right: the first pushed goes first

    wait_for(lambda: int(client.get("logs.rejected.count") or 0) == len(items), timeout=60,
             message="every item set aside")
    kept = [json.loads(raw) for raw in client.lrange("logs.rejected", 0, -1)]
    assert len(kept) == REJECTED_KEEP
    assert kept[0]["raw"] == huge[:REJECTED_RAW_CHARS] and kept[0]["raw_chars"] == len(huge)
    assert kept[-1]["raw"] == items[-REJECTED_KEEP]  # the oldest went first
    assert celery_worker.alive()

    status = app.test_cli_runner().invoke(args=["execlog", "status", "--json"])
    figures = json.loads(status.output)
    assert (figures["queue_rejected"], figures["queue_rejected_total"]) == (REJECTED_KEEP, len(items))
    client.delete("logs.rejected", "logs.rejected.count")
