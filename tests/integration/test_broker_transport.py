"""The Redis transport: the guard for a channel closed after its
connection, and no message lost by a worker killed while taking it."""

from __future__ import annotations

import json

import kombu
import redis

from webapp.execlog.broker import Channel, SafeRedisTransport

from ..support.waiting import wait_for

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


def _consume_one_without_reading_the_reply(redis_url: str, queue_name: str) -> None:
    """What a worker SIGKILLed right after asking Redis for a message does:
    the request is sent, the reply is never read, the socket dies."""
    connection = kombu.Connection(redis_url, transport=SafeRedisTransport)
    channel = connection.channel()
    channel.basic_consume(queue_name, False, lambda message: None, "tag")
    channel.connection.cycle._register_BRPOP(channel)  # sends the request, as the event loop does
    wait_for(lambda: redis.Redis.from_url(redis_url).llen(queue_name) == 0, timeout=5,
             message="Redis to hand the message out")
    channel.client.connection.disconnect()


def test_a_message_taken_by_a_worker_killed_before_reading_it_is_redelivered(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE, "unacked", "unacked_index")
    with kombu.Connection(redis_url, transport=SafeRedisTransport) as producer:
        queue = kombu.Queue(QUEUE, channel=producer.default_channel)
        queue.declare()
        kombu.Producer(producer.default_channel).publish({"n": 7}, routing_key=QUEUE)

    _consume_one_without_reading_the_reply(redis_url, QUEUE)

    assert client.llen(QUEUE) == 0
    assert client.hlen("unacked") == 1, "taken and recorded in one step"
    (recorded,) = client.hvals("unacked")
    message, exchange, routing_key = json.loads(recorded)
    assert message["properties"]["delivery_tag"] and routing_key == QUEUE
    with kombu.Connection(redis_url, transport=SafeRedisTransport,
                          transport_options={"visibility_timeout": 0}) as restorer:
        restorer.default_channel.qos.restore_visible(num=10, interval=1)
    assert client.llen(QUEUE) == 1, "the message is handed out again"
    with kombu.Connection(redis_url, transport=SafeRedisTransport) as consumer:
        got = kombu.Queue(QUEUE, channel=consumer.default_channel).get(no_ack=True)
        assert got is not None and got.payload == {"n": 7}
    client.delete(QUEUE, "unacked", "unacked_index")
