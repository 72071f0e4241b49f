"""The serializer of log batch messages: JSON, read back as it was written.

A log batch is an ordinary Celery task message, but not of kombu's "json".
kombu reads every JSON object of a "json" message through an object hook
that turns ``{"__type__": ..., "__value__": ...}`` into a Python value (a
datetime, a UUID, a Decimal, bytes) and raises for a ``__type__`` it does
not know. A record whose ``details`` (or a value inside them) happened to be
such an object was stored changed, or took its whole batch down with it:
its message failed to decode. And the hook is a Python call per object,
with the standard library's parser: a batch of 1,000 records took 1.2 to
2.8 ms to decode, against 0.6 here, of the 10 to 13 ms its ``COPY`` takes.

So batches are published as :data:`~webapp.names.BATCH_SERIALIZER`
(content type :data:`~webapp.names.BATCH_CONTENT_TYPE`), which every process
of the project registers (:func:`register`) and every worker accepts
(``accept_content`` in :func:`webapp.config.celery_config`). It decodes with
orjson, whose only difference from the standard library on valid JSON is
that an integer beyond 64 bits becomes a float: a message with a run of 19
digits or more (such an integer, or only digits inside a string) is read by
the standard library instead, exactly, as is one orjson refuses but the
standard library reads (an escaped lone surrogate or a NaN from a foreign
producer: the worker repairs or refuses those rows one by one). Its encoder
(a retried batch is published again through kombu) writes plain JSON, as
the producer does.
Messages of kombu's "json" (a foreign producer, a batch queued before this
serializer) are still accepted.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from kombu.serialization import registry

from ..names import BATCH_CONTENT_TYPE, BATCH_SERIALIZER

#: A run of digits that may be an integer orjson cannot hold exactly
#: (2**63 has 19 digits), searched for as a run of zeros once every digit
#: is a zero: ``bytes.translate`` and ``find`` take 0.16 ms over a batch of
#: 1,000 records, where the regular expression ``[0-9]{19}`` took 2.6 (and
#: a worker decodes each message twice: Celery's main process reads the body
#: to tell protocol 1 from 2, the pool process to run the task).
_DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGITS = b"0" * 19


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """A message body, decoded: plain JSON values, no object hooks."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not _has_long_digits(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # what only the standard library reads: an escaped lone surrogate, NaN
    return json.loads(data)


def _has_long_digits(data: str | bytes) -> bool:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return data.translate(_DIGITS_AS_ZEROS).find(_LONG_DIGITS) != -1


def dumps(value: Any) -> str:
    """A message body: plain JSON (the standard library writes what orjson
    cannot, such as an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def register() -> None:
    """Make :data:`~webapp.names.BATCH_SERIALIZER` known to kombu in this
    process (again is harmless)."""
    registry.register(BATCH_SERIALIZER, dumps, loads, content_type=BATCH_CONTENT_TYPE,
                      content_encoding="utf-8")
