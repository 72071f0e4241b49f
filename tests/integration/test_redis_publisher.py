"""Log batches published on Redis by RedisMessagePublisher are the messages
kombu's own publish writes, on the list kombu would write them to."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from webapp.config import celery_config
from webapp.execlog.redis_publisher import RedisMessagePublisher
from webapp.execlog.sinks import BatchPublisher

QUEUE = "redis-publisher-test"
ROWS = [orjson.dumps([f"row {n}", {"n": n, "text": 'quotes " and \\ backslashes'}]) for n in range(3)]


def _without_ids(item: bytes) -> dict[str, Any]:
    envelope = orjson.loads(item)
    for key in ("id", "root_id"):
        assert envelope["headers"].pop(key)
    for key in ("correlation_id", "delivery_tag"):
        assert envelope["properties"].pop(key)
    return envelope


def _publisher(app_factory, broker: str, tmp_path, **transport_options: Any) -> BatchPublisher:
    config = celery_config(broker, tmp_path)
    config["broker_transport_options"] = {**config.get("broker_transport_options", {}), **transport_options}
    app = app_factory(CELERY=config)
    return BatchPublisher(app.extensions["celery"], QUEUE)


def test_a_batch_is_the_message_kombus_own_publish_writes(app_factory, spare_broker, tmp_path):
    client = redis.Redis.from_url(spare_broker)
    client.delete(QUEUE)
    publisher = _publisher(app_factory, spare_broker, tmp_path)
    assert isinstance(publisher.redis, RedisMessagePublisher)
    try:
        publisher.publish(ROWS)
        lean, publisher.redis = publisher.redis, None  # the same rows through kombu's basic_publish
        publisher.publish(ROWS)
        publisher.redis = lean
    finally:
        publisher.close()

    through_kombu, ours = client.lrange(QUEUE, 0, -1)  # LPUSH: the newest first
    assert _without_ids(ours) == _without_ids(through_kombu)
    body = orjson.loads(orjson.loads(ours)["body"])
    assert body[0][1] == [orjson.loads(row) for row in ROWS]
    client.delete(QUEUE)


def test_each_message_has_ids_of_its_own(app_factory, spare_broker, tmp_path):
    client = redis.Redis.from_url(spare_broker)
    client.delete(QUEUE)
    publisher = _publisher(app_factory, spare_broker, tmp_path)
    try:
        for _ in range(3):
            publisher.publish(ROWS)
    finally:
        publisher.close()
    envelopes = [orjson.loads(item) for item in client.lrange(QUEUE, 0, -1)]
    assert len({e["headers"]["id"] for e in envelopes}) == 3
    assert len({e["properties"]["delivery_tag"] for e in envelopes}) == 3
    assert all(e["headers"]["id"] == e["properties"]["correlation_id"] for e in envelopes)
    client.delete(QUEUE)


def test_with_a_global_key_prefix_kombu_publishes_it(app_factory, spare_broker, tmp_path):
    client = redis.Redis.from_url(spare_broker)
    client.delete(f"pfx:{QUEUE}", QUEUE)
    publisher = _publisher(app_factory, spare_broker, tmp_path, global_keyprefix="pfx:")
    try:
        assert publisher.redis is None
        publisher.publish(ROWS)
    finally:
        publisher.close()
    assert client.llen(f"pfx:{QUEUE}") == 1 and client.llen(QUEUE) == 0
    client.delete(f"pfx:{QUEUE}")


def test_a_closed_publisher_gives_its_connection_back_to_the_pool(app_factory, spare_broker, tmp_path):
    publisher = _publisher(app_factory, spare_broker, tmp_path)
    lean = publisher.redis
    assert lean is not None
    pool = lean._pool
    in_use = len(pool._in_use_connections)
    publisher.close()
    assert len(pool._in_use_connections) == in_use - 1
    with pytest.raises(ConnectionError, match="closed"):
        lean.publish("[]", {}, {})
