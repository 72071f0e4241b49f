"""The kombu methods webapp.execlog.broker copies or replaces are the ones it
was written against.

kombu has no public hook for what the broker module does (take a message
and record it as unacknowledged in one step, check each item a worker pops,
reuse one client, encode the envelope with orjson), so it
overrides methods of kombu's Redis channel, some of them copies with one line
changed, and pins kombu's minor version (pyproject.toml). The log batches'
publisher (webapp.execlog.redis_publisher) writes the message kombu's publish
would write, without calling it. If kombu's originals change, these fail:
read the new original, bring the override (or the publisher) in line, then
record the new digest here.
"""

from __future__ import annotations

import hashlib
import inspect

import kombu
import pytest
from kombu.transport import redis as kombu_redis

from webapp.execlog import broker

#: sha256 (first 16 hex digits) of the source of kombu 5.7's originals.
ORIGINALS = {
    "_brpop_read": "c42518699709f2df",  # replaced by ClaimingChannel (its BRPOP case a copy)
    "_brpop_start": "06723d707ddf2240",  # replaced by ClaimingChannel (the claim script)
    "_get": "be26a9f1eb4cf8da",  # copied by RejectingChannel, decoding replaced
    "_put": "1c0cf9749576614c",  # its plain case re-done by FastEnvelopeChannel
    "conn_or_acquire": "25883caca6c4121e",  # replaced by ReusedClientChannel
}

#: The same, of the methods whose message RedisMessagePublisher writes itself.
REPRODUCED = {
    "_inplace_augment_message": "3a07d99062fc5824",  # body_encoding, delivery_tag, delivery_info
    "_q_for_pri": "f3997660680dd00f",  # the list of a priority (called by the publisher)
    "basic_publish": "83825b6758712705",  # the default exchange: straight to _put
    "prepare_message": "40e1ae6d7753b659",  # the envelope (called by the publisher)
}


def test_kombu_is_the_minor_version_the_overrides_were_written_for():
    assert kombu.__version__.startswith("5.7."), "see this module's docstring"


PINNED = {**ORIGINALS, **REPRODUCED}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_kombus_original_is_unchanged(name):
    source = inspect.getsource(getattr(kombu_redis.Channel, name))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == PINNED[name], (
        f"kombu's Channel.{name} changed: review webapp/execlog/broker.py and redis_publisher.py"
    )


def test_each_override_is_in_its_own_class():
    owners = {name: next(cls for cls in broker.Channel.__mro__ if name in vars(cls))
              for name in ORIGINALS}
    assert owners == {
        "_brpop_read": broker.ClaimingChannel,
        "_brpop_start": broker.ClaimingChannel,
        "_get": broker.RejectingChannel,
        "_put": broker.FastEnvelopeChannel,
        "conn_or_acquire": broker.ReusedClientChannel,
    }
