"""Input PostgreSQL would refuse goes through the whole pipeline repaired, and
the worker keeps going."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.usefixtures("celery_worker")


def test_hostile_records_are_stored_repaired(app, log_table, trace_id, celery_worker):
    logger = app.extensions["execlog"]
    cyclic: dict = {"name": "cycle"}
    cyclic["self"] = cyclic
    deep: dict = {}
    node = deep
    for _ in range(5000):  # too deep for the JSON encoder
        node["d"] = {}
        node = node["d"]

    logger.info(trace_id, "agent", "nul \x00 and lone \ud800 surrogate", step="s\x00")
    logger.info(trace_id, "agent", b"invalid utf-8 \xff\xfe")
    logger.info(trace_id, "agent", "m" * 10_000_000)
    logger.info(trace_id, "agent", "cyclic", details=cyclic)
    logger.info(trace_id, "agent", "deep", details=deep)
    logger.info(trace_id, "agent", "non-finite", details={"nan": math.nan, "inf": [math.inf, -math.inf]})
    logger.info(trace_id, "agent", "odd values", details={"set": {1}, "bytes": b"\x00\xff", "obj": object})
    with pytest.raises(ValueError, match="trace_id is 10000 characters long"):
        logger.info("t" * 10_000, "agent", "refused at the call")
    assert logger.flush(timeout=30) is True

    rows = log_table.wait_for_count(trace_id, 7)
    by_message = {row["message"][:20]: row for row in rows}
    assert rows[0]["message"] == "nul \ufffd and lone \ufffd surrogate" and rows[0]["step"] == "s\ufffd"
    assert rows[1]["message"] == "invalid utf-8 \ufffd\ufffd"
    truncated = rows[2]["message"]
    assert len(truncated) < 33_000 and truncated.endswith("... [truncated 9967232 characters]")
    # Disk durability (the default) encodes the record in log(): the cycle
    # closes where it is. (Memory mode copies the top level: one level down.)
    assert by_message["cyclic"]["details"] == {"name": "cycle", "self": "[circular reference]"}
    assert "[max depth exceeded]" in str(by_message["deep"]["details"])
    assert by_message["non-finite"]["details"] == {"nan": "NaN", "inf": ["Infinity", "-Infinity"]}
    odd = by_message["odd values"]["details"]
    assert odd["set"] == [1] and odd["bytes"] == "\ufffd\ufffd" and odd["obj"] == "<class 'object'>"
    assert celery_worker.alive()


def test_details_shaped_like_kombus_type_markers_are_stored_as_they_are(app, log_table, trace_id):
    """kombu's "json" reads {"__type__": ..., "__value__": ...} as a Python
    value, and fails the whole message for a type it does not know: log
    batches have a serializer of their own that reads JSON as it was
    written (webapp.execlog.serializer)."""
    logger = app.extensions["execlog"]
    as_datetime = {"__type__": "datetime", "__value__": "2020-01-02T03:04:05"}
    unknown = {"__type__": "no-such-type", "__value__": 1}
    big = 2**70
    logger.info(trace_id, "agent", "before")
    logger.info(trace_id, "agent", "a datetime marker", details=as_datetime)
    logger.info(trace_id, "agent", "an unknown marker", details={"nested": [unknown]})
    logger.info(trace_id, "agent", "a big integer", details={"n": big, "digits": "12345678901234567890123"})
    logger.info(trace_id, "agent", "after")
    assert logger.flush(timeout=30) is True

    rows = {row["message"]: row for row in log_table.wait_for_count(trace_id, 5)}
    assert rows["a datetime marker"]["details"] == as_datetime
    assert rows["an unknown marker"]["details"] == {"nested": [unknown]}
    assert rows["a big integer"]["details"] == {"n": big, "digits": "12345678901234567890123"}
    assert {"before", "after"} <= set(rows)
