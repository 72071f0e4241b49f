"""The Redis transport's guard for a channel closed after its connection."""

from __future__ import annotations

import kombu
import redis

from webapp.execlog.broker import Channel, SafeRedisTransport

QUEUE = "transport-guard-test"


def test_closing_a_channel_whose_connection_is_gone_keeps_the_worker_alive(redis_url, caplog):
    connection = kombu.Connection(redis_url, transport=SafeRedisTransport)
    channel = connection.channel()
    assert isinstance(channel, Channel)
    queue = kombu.Queue(QUEUE, channel=channel)
    queue.declare()
    kombu.Producer(channel).publish({"n": 1}, routing_key=QUEUE)
    assert queue.get(no_ack=False) is not None  # taken, not acked
    assert len(channel.qos._delivered) == 1

    channel.connection.client = None  # what a lost broker connection leaves behind
    channel.close()  # kombu 5.7's own channel raises AttributeError here

    assert "will be redelivered after the visibility timeout" in caplog.text
    redis.Redis.from_url(redis_url).delete(QUEUE, "unacked", "unacked_index")
