"""The batch task's retry countdown: exponential backoff with jitter, in
whole seconds (at least 1) on RabbitMQ, whose delayed delivery takes
``int(countdown)`` and refuses 0."""

from __future__ import annotations

import math

import pytest
from celery import Celery
from kombu.transport.native_delayed_delivery import calculate_routing_key

from webapp.execlog import tasks
from webapp.execlog.tasks import retry_countdown, whole_second_countdowns


@pytest.mark.parametrize("retries", range(0, 12))
def test_the_countdown_backs_off_with_jitter_up_to_the_cap(retries):
    delay = min(60.0, 1.0 * 2 ** retries)
    for _ in range(200):
        countdown = retry_countdown(retries, 1.0, 60.0)
        assert delay * 0.5 <= countdown <= delay


def test_without_whole_seconds_the_first_retries_may_be_sub_second():
    countdowns = [retry_countdown(0, 1.0, 60.0) for _ in range(200)]
    assert all(0.5 <= countdown <= 1.0 for countdown in countdowns)
    assert any(countdown < 1 for countdown in countdowns)


@pytest.mark.parametrize("base, cap", [(1.0, 60.0), (0.2, 1.0), (0.01, 0.05), (2.5, 7.0)])
@pytest.mark.parametrize("retries", [0, 1, 2, 3, 5, 10, 40])
def test_whole_seconds_are_integers_of_at_least_one_keeping_the_backoff(retries, base, cap):
    delay = min(cap, base * 2 ** min(retries, 30))
    for _ in range(200):
        countdown = retry_countdown(retries, base, cap, whole_seconds=True)
        assert isinstance(countdown, int)
        assert countdown >= 1
        assert max(1, math.ceil(delay * 0.5)) <= countdown <= max(1, math.ceil(delay))


def test_whole_seconds_keep_jitter_where_the_delay_spans_several_seconds():
    assert len({retry_countdown(4, 1.0, 60.0, whole_seconds=True) for _ in range(500)}) > 3


def test_rabbitmq_delayed_delivery_refuses_a_sub_second_countdown_and_takes_a_whole_one():
    """What Celery does with a countdown on quorum queues
    (celery/app/base.py send_task: calculate_routing_key(int(countdown), ...))."""
    with pytest.raises(ValueError, match="countdown must be a positive number"):
        calculate_routing_key(int(retry_countdown(0, 1.0, 60.0)), "logs")
    for retries in (0, 1, 2, 6, 30):
        countdown = retry_countdown(retries, 1.0, 60.0, whole_seconds=True)
        key = calculate_routing_key(int(countdown), "logs")
        assert key.endswith(".logs")
        assert int(key.removesuffix(".logs").replace(".", ""), 2) == countdown


@pytest.mark.parametrize("url, expected", [
    ("amqp://guest:guest@127.0.0.1:5672/vhost", True),
    ("pyamqp://guest:guest@127.0.0.1:5672//", True),
    ("amqp://guest:guest@127.0.0.1:1/v;amqp://guest:guest@127.0.0.1:5672/v", True),
    ("redis://127.0.0.1:6379/3", False),
    ("filesystem://", False),
    ("memory://", False),
])
def test_whole_seconds_on_rabbitmq_only_decided_from_the_app_without_connecting(url, expected):
    app = Celery("countdown-test", broker=url, set_as_current=False)
    assert whole_second_countdowns(app) is expected
    assert tasks._WHOLE_SECONDS[app] is expected, "cached"
    app.conf.broker_url = "memory://" if expected else "amqp://"
    assert whole_second_countdowns(app) is expected, "from the cache"
