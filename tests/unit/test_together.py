"""Which messages the worker's strategy may store together with others
(webapp/execlog/together.py), told from their headers alone."""

from __future__ import annotations

from typing import Any

import pytest
from kombu.message import Message

from webapp.execlog.together import combinable
from webapp.names import BATCH_CONTENT_TYPE, INSERT_BATCH_TASK


def message(content_type: str = BATCH_CONTENT_TYPE, redelivered: bool = False, **headers: Any) -> Message:
    return Message(body=b'[[2, []], {}, {}]', content_type=content_type, content_encoding="utf-8",
                   delivery_info={"routing_key": "logs", "redelivered": redelivered},
                   headers={"task": INSERT_BATCH_TASK, "id": "an-id", "eta": None, "expires": None,
                            **headers})


def test_a_batch_delivered_for_the_first_time_and_due_now_may_share_a_job():
    assert combinable(message(), None)


@pytest.mark.parametrize("why_not, made", [
    ("a retry's countdown", lambda: message(eta="2026-12-07T12:00:00+00:00")),
    ("an expiry", lambda: message(expires="2026-12-07T12:00:00+00:00")),
    ("delivered again, after its process died", lambda: message(redelivered=True)),
    ("kombu's json, not the batch serializer", lambda: message(content_type="application/json")),
])
def test_anything_else_goes_celerys_way(why_not, made):
    assert not combinable(made(), None), why_not


def test_a_protocol_1_message_goes_celerys_way():
    """The consumer passes the decoded body only for protocol 1."""
    assert not combinable(message(), {"task": INSERT_BATCH_TASK, "args": [2, []]})
