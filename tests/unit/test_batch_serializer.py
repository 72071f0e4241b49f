"""The serializer of log batch messages reads JSON back as it was written."""

from __future__ import annotations

import kombu.serialization
import pytest

from webapp.execlog import serializer
from webapp.execlog.tasks import insert_batch
from webapp.names import BATCH_CONTENT_TYPE, BATCH_SERIALIZER

MARKER = {"__type__": "datetime", "__value__": "2020-01-02T03:04:05"}


@pytest.mark.parametrize("body", [
    [[2, [["id", 1, {"d": MARKER}]]], {}, {}],
    [{"__type__": "no-such-type", "__value__": None}],
    [2**64, -(2**63) - 1, 2**200, "12345678901234567890", 1.5],
    ["text é \u2028", None, True, {"a": [1, {"b": []}]}],
])
def test_a_body_decodes_to_what_was_encoded(body):
    text = serializer.dumps(body)
    for form in (text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        assert serializer.loads(form) == body


def test_an_integer_beyond_64_bits_stays_exact():
    decoded = serializer.loads(b'[18446744073709551617, -9223372036854775809]')
    assert decoded == [18446744073709551617, -9223372036854775809]
    assert all(type(n) is int for n in decoded)


@pytest.mark.parametrize("digits", range(1, 41))
def test_integers_of_every_length_stay_exact(digits):
    numbers = [int("9" * digits), -int("9" * digits), int("1" + "0" * (digits - 1))]
    text = f'[{numbers[0]}, {numbers[1]}, {{"n": {numbers[2]}}}, "x"]'
    # The last: text holding a lone surrogate, which only the standard library reads.
    for form in (text, text.encode(), text.replace('"x"', '"x\udc80"')):
        decoded = serializer.loads(form)
        assert decoded[:2] == numbers[:2] and decoded[2]["n"] == numbers[2]
        assert {type(n) for n in (*decoded[:2], decoded[2]["n"])} == {int}


def test_what_only_the_standard_library_reads_is_read():
    assert serializer.loads('["half \\ud800 a pair", NaN]')[0] == "half \ud800 a pair"


def test_kombu_decodes_a_batch_with_it_once_registered():
    serializer.register()
    content_type, encoding, payload = kombu.serialization.dumps([MARKER], serializer=BATCH_SERIALIZER)
    assert content_type == BATCH_CONTENT_TYPE
    assert kombu.serialization.loads(payload, content_type, encoding, accept=[BATCH_CONTENT_TYPE]) == [MARKER]


def test_a_retried_batch_is_published_with_it():
    assert insert_batch.serializer == BATCH_SERIALIZER
