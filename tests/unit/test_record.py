"""A record's validation and normalisation: what fails in log(), what is repaired."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timezone

import pytest

import orjson

from webapp.execlog.fields import FIELDS, Limits, created_at_of
from webapp.execlog.ids import MonotonicStamp, format_uuid, uuid7_int, uuid7_time_ms
from webapp.execlog.normalise import (
    MAX_DETAILS_DEPTH,
    check_identifier,
    copy_details,
    normalise_attempt,
    normalise_category,
    normalise_duration,
    normalise_level,
    normalise_message,
)
from webapp.execlog.record import LogRecord
from webapp.execlog.wire import (
    ENCODE_GROUP, InvalidRow, RowBatch, check_row, check_rows, encode_record, upgrade_v1,
)

from ..support.records import make_record as _make_record


def make_record(limits: Limits | None = None, **fields) -> LogRecord:
    values = dict(
        created_ns=1_700_000_000_123_456_789,
        counter=12345,
        trace_id="trace-1",
        level="info",
        category="agent",
        message="hello",
    )
    values.update(fields)
    if "details" in values:
        values["details"] = copy_details(values["details"])
    record = _make_record(**values)
    if limits is not None:
        record.limits = limits
    return record


def stored_details(details, max_chars: int = 65_536):
    """``details`` as the worker receives them, after the repairs of shipping."""
    return make_record(details=details, limits=Limits(max_details_chars=max_chars)).details


class TestRefusedInLog:
    @pytest.mark.parametrize("level", ["verbose", "", None, 3])
    def test_unknown_level_names_the_field(self, level):
        with pytest.raises(ValueError, match="level must be one of"):
            normalise_level(level)

    @pytest.mark.parametrize("category", ["db", "", None])
    def test_unknown_category_names_the_field(self, category):
        with pytest.raises(ValueError, match="category must be one of"):
            normalise_category(category)

    def test_levels_and_categories_are_case_insensitive(self):
        assert normalise_level("WARNING") == "warning"
        assert normalise_category("Tool") == "tool"

    @pytest.mark.parametrize("trace_id", [None, ""])
    def test_missing_trace_id(self, trace_id):
        with pytest.raises(ValueError, match="trace_id is required"):
            check_identifier(trace_id, "trace_id", required=True)

    @pytest.mark.parametrize("message", [None, "", b""])
    def test_missing_message(self, message):
        with pytest.raises(ValueError, match="message is required"):
            normalise_message(message, 100)

    def test_a_trace_id_of_10000_characters_is_refused_not_cut(self):
        with pytest.raises(ValueError, match="trace_id is 10000 characters long; the limit is 255"):
            check_identifier("t" * 10_000, "trace_id", required=True)

    def test_identifiers_of_other_types_become_text(self):
        value = uuid.uuid4()
        assert check_identifier(value, "trace_id") == str(value)
        assert check_identifier(42, "step") == "42"

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), "12", True])
    def test_duration_must_be_a_finite_number(self, value):
        with pytest.raises(ValueError, match="duration_ms must be"):
            normalise_duration(value)

    def test_duration_is_kept_as_float(self):
        assert normalise_duration(12) == 12.0

    @pytest.mark.parametrize("value", [-1, 1.0, True, "2", 2**31])
    def test_attempt_must_be_a_whole_number_from_0(self, value):
        with pytest.raises(ValueError, match="attempt must be"):
            normalise_attempt(value)


class TestRepairedInLog:
    def test_nul_characters_are_replaced(self):
        assert normalise_message("a\x00b", 100) == "a\ufffdb"
        assert check_identifier("t\x00", "trace_id") == "t\ufffd"

    def test_lone_surrogates_are_replaced(self):
        text = normalise_message("x\ud800y", 100)
        assert text == "x\ufffdy"
        text.encode("utf-8")
        assert check_identifier("s\udfff", "step") == "s\ufffd"

    def test_non_ascii_text_is_kept(self):
        assert normalise_message("étape terminée ✓", 100) == "étape terminée ✓"
        assert check_identifier("étape", "step") == "étape"

    def test_invalid_utf8_bytes_are_decoded_with_replacement(self):
        assert normalise_message(b"ok \xff\xfe", 100) == "ok \ufffd\ufffd"

    def test_a_10_mb_message_is_truncated_with_a_marker(self):
        message = "m" * 10_000_000
        text = normalise_message(message, 1000)
        assert text.startswith("m" * 1000)
        assert text.endswith("... [truncated 9999000 characters]")
        assert len(text) < 1100


class TestRepairedOnTheWire:
    def test_a_record_that_needs_no_repair_is_encoded_as_it_is(self):
        record = make_record(step="s", details={"k": "v", "n": 1.5, "nested": {"list": [1, None]}})
        assert orjson.loads(encode_record(record, Limits())) == list(record)

    def test_details_that_json_cannot_hold_become_strings(self):
        class Thing:
            def __str__(self):
                return "a thing"

        when = datetime(2026, 1, 2, tzinfo=timezone.utc)
        details = stored_details(
            {"thing": Thing(), "when": when, "ids": {1}, "raw": b"\xff", "id": uuid.UUID(int=1)}, 10_000
        )
        assert details == {
            "thing": "a thing",
            "when": "2026-01-02T00:00:00+00:00",
            "ids": [1],
            "raw": "\ufffd",
            "id": "00000000-0000-0000-0000-000000000001",
        }

    def test_nan_and_infinity_become_strings(self):
        details = stored_details({"a": math.nan, "b": [math.inf, -math.inf], "c": 1.5}, 10_000)
        assert details == {"a": "NaN", "b": ["Infinity", "-Infinity"], "c": 1.5}

    def test_cycles_are_cut_with_a_marker(self):
        details = {"name": "loop"}
        details["self"] = details
        # log() copies details one level deep: the copy holds the original,
        # whose cycle is cut where it comes back to itself.
        assert stored_details(details, 10_000) == {
            "name": "loop",
            "self": {"name": "loop", "self": "[circular reference]"},
        }

    def test_deep_nesting_is_cut_with_a_marker(self):
        deep: dict = {}
        node = deep
        for _ in range(5000):
            node["child"] = {}
            node = node["child"]
        parsed = stored_details(deep, 1_000_000)
        depth = 0
        while isinstance(parsed, dict):
            parsed = parsed["child"]
            depth += 1
        assert parsed == "[max depth exceeded]"
        assert depth == MAX_DETAILS_DEPTH

    def test_nul_and_surrogates_in_details_are_replaced(self):
        details = stored_details({"k\x00": "v\x00\ud800"}, 1000)
        assert details == {"k\ufffd": "v\ufffd\ufffd"}

    def test_non_text_keys_become_text(self):
        assert stored_details({(1, 2): "pair", 3: "three"}, 1000) == {
            "(1, 2)": "pair",
            "3": "three",
        }

    def test_oversized_details_are_replaced_by_a_truncation_marker(self):
        parsed = stored_details({"blob": "x" * 5000}, 1000)
        assert parsed["_truncated"] is True
        assert parsed["_original_chars"] == len(json.dumps({"blob": "x" * 5000}, separators=(",", ":")))
        assert parsed["_preview"].startswith('{"blob":"xxx')

    def test_non_dict_details_are_wrapped(self):
        assert stored_details([1, 2], 100) == {"value": [1, 2]}

    def test_message_normalisation_keeps_short_text(self):
        assert normalise_message("short", 10) == "short"

    def test_integers_json_encoders_refuse_are_kept(self):
        assert stored_details({"big": 2**70}) == {"big": 2**70}


class TestWireForm:
    def test_round_trip(self):
        record = make_record(step="s", agent_name="a", details={"k": "v"}, duration_ms=1.5, attempt=3)
        (row,), refused = check_rows([json.loads(json.dumps(record.to_wire()))], 2)
        assert refused == []
        assert row[0] == record.id.replace("-", "")
        assert created_at_of(row[1]) == record.created_at
        assert row[10] == {"k": "v"}
        assert row[11] == 1.5 and row[12] == 3
        assert record.to_dict()["created_at"] == "2023-11-14T22:13:20.123456+00:00"
        assert [f.name for f in FIELDS if f.name not in ("id", "created_at_us")] == [
            name for name in record.to_dict() if name not in ("id", "created_at")]

    def test_a_version_1_row_is_taken_in_todays_layout(self):
        record = make_record(details={"k": "v"})
        v1 = record.to_wire()[:12]
        v1[10] = '{"k":"v"}'
        (row,), refused = check_rows([v1], 1)
        assert refused == [] and row[10] == '{"k":"v"}' and row[12] is None
        assert upgrade_v1(v1)[10] == {"k": "v"}

    @pytest.mark.parametrize(
        "mutate, reason",
        [
            (lambda row: row[:5], "list of 13 fields"),
            (lambda row: ["nope", *row[1:]], "id is not a UUID"),
            (lambda row: [row[0], -1, *row[2:]], "created_at_us"),
            (lambda row: [*row[:2], "", *row[3:]], "trace_id"),
            (lambda row: [*row[:3], "loud", *row[4:]], "unknown level"),
            (lambda row: [*row[:4], "misc", *row[5:]], "unknown category"),
            (lambda row: [*row[:5], 42, *row[6:]], "message"),
            (lambda row: [*row[:6], "s" * 300, *row[7:]], "step"),
            (lambda row: [*row[:10], "{}", *row[11:]], "details"),
            (lambda row: [*row[:11], "slow", row[12]], "duration_ms"),
            (lambda row: [*row[:12], True], "attempt"),
        ],
    )
    def test_rows_that_are_not_records_are_refused_with_the_reason(self, mutate, reason):
        row = make_record().to_wire()
        with pytest.raises(InvalidRow, match=reason):
            check_row(mutate(list(row)))

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda row: row[:5],
            lambda row: [row[0], -1, *row[2:]],
            lambda row: [*row[:5], 42, *row[6:]],
            lambda row: [*row[:10], "{}", *row[11:]],
            lambda row: [*row[:12], True],
        ],
    )
    def test_the_worker_refuses_rows_of_the_wrong_types_on_their_own(self, mutate):
        good = make_record().to_wire()
        rows, refused = check_rows([good, mutate(list(good)), good], 2)
        assert rows == [good, good] and len(refused) == 1

    def test_garbage_is_refused(self):
        for garbage in (None, "text", 42, {"id": 1}):
            with pytest.raises(InvalidRow):
                check_row(garbage)
        assert len(check_rows([None, "text", 42, {"id": 1}], 2)[1]) == 4


class TestRowBatch:
    """The flusher encodes a group of records in one call: the rows must be
    what encode_record makes of each, repairs included."""

    @staticmethod
    def records_needing(kind: str) -> list[LogRecord]:
        plain = [make_record(message=f"plain {i}", details={"i": i, "ok": True})
                 for i in range(ENCODE_GROUP + 40)]  # more than one group
        odd = {
            "nothing": [],
            "nul": [make_record(details={"text": "nul \x00 here"})],
            "surrogate": [make_record(details={"text": "half \ud800 a pair"})],
            "nan": [make_record(details={"ratio": math.nan, "top": math.inf})],
            "deep": [make_record(details={"d": _nested(MAX_DETAILS_DEPTH + 5)})],
            "unencodable": [make_record(details={"when": datetime(2026, 1, 2), 3: "int key"})],
            "big": [make_record(details={"blob": "x" * 3000})],
            "other limits": [make_record(details={"blob": "y" * 300}, limits=Limits(max_details_chars=100))],
        }[kind]
        return plain[:17] + odd + plain[17:]

    @pytest.mark.parametrize("kind", ["nothing", "nul", "surrogate", "nan", "deep", "unencodable", "big",
                                      "other limits"])
    def test_rows_are_those_encode_record_makes(self, kind):
        records = self.records_needing(kind)
        for record in records:
            record.limits = record.limits if kind == "other limits" else Limits(max_details_chars=2000)
        expected = [orjson.loads(encode_record(record, record.limits)) for record in records]

        batch = RowBatch.encode(records)

        assert batch.decode() == expected
        assert json.loads(b"[" + batch.joined + b"]") == expected
        assert [orjson.loads(row) for row in batch] == expected  # one by one, for the spool
        assert len(batch) == len(records)

    def test_a_group_is_one_call_unless_a_check_fails(self):
        records = self.records_needing("nothing")
        batch = RowBatch.encode(records)
        assert all(record.encoded is None for record in records)  # not one at a time
        assert batch.joined.count(b"\n") == 0
        repaired = RowBatch.encode(self.records_needing("nul"))
        # in halves: the record with the NUL, and at most its neighbour, a row at a time
        assert 1 <= repaired.joined.count(b"\n") <= 2


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"d": value}
    return value


class TestIds:
    def test_uuid7_layout(self):
        value = uuid.UUID(format_uuid(uuid7_int(1_700_000_000_123_456_789, 5)))
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert uuid7_time_ms(value) == 1_700_000_000_123
        record = make_record(created_ns=1_700_000_000_123_456_789, counter=5)
        assert str(value) == record.id

    def test_stamps_increase_even_when_the_clock_steps_back(self, monkeypatch):
        readings = iter([2_000_000_000, 2_000_000_000, 1_000_000_000, 3_000_000_000])
        monkeypatch.setattr("webapp.execlog.ids._time_ns", lambda: next(readings))
        stamp = MonotonicStamp()
        stamps = [stamp.next() for _ in range(4)]
        assert [ns for ns, _ in stamps] == [2_000_000_000, 2_000_000_000, 2_000_000_000, 3_000_000_000]
        ids = [uuid7_int(*s) for s in stamps]
        assert ids == sorted(ids) and len(set(ids)) == 4

    def test_many_stamps_in_one_instant_stay_ordered_and_valid(self):
        stamp = MonotonicStamp()
        ids = [uuid7_int(*stamp.next()) for _ in range(10_000)]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert all(uuid.UUID(int=v).version == 7 and uuid.UUID(int=v).variant == uuid.RFC_4122
                   for v in ids)

    def test_processes_start_from_different_counters(self):
        assert MonotonicStamp().next()[1] != MonotonicStamp().next()[1]
