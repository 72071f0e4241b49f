"""The buffer and flusher against a real Redis: thresholds, flush(), fork,
threads, and what happens when the broker cannot be reached.

Batches go to a queue of the test's own that no worker consumes, so the test
reads exactly what the producer published.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from webapp.config import celery_config
from webapp.execlog import LogCategory, execution_logger
from webapp.execlog.fields import CREATED_AT_US, ID
from webapp.execlog.ids import uuid7_hex

from ..support.broker import QueueReader
from ..support.processes import free_port
from ..support.waiting import wait_for


@pytest.fixture
def queue(redis_url):
    reader = QueueReader(redis_url, f"test-logs-{uuid.uuid4().hex[:12]}")
    yield reader
    reader.clear()


@pytest.fixture
def make_app(app_factory, queue):
    def make(**overrides):
        overrides.setdefault("EXECLOG_QUEUE", queue.queue)
        return app_factory(**overrides)

    return make


def spooled_rows(spool_dir: Path) -> list[list]:
    """Every row in the spool's segments (an open segment's unused tail is zeros)."""
    rows = []
    for path in sorted(spool_dir.glob("*.seg")):
        data = path.read_bytes().split(b"\x00", 1)[0]
        rows.extend(json.loads(line) for line in data.splitlines() if line)
    return rows


def test_the_50th_record_ships_a_batch_of_50(make_app, queue, trace_id):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    records = [logger.info(trace_id, LogCategory.AGENT, f"record {i}") for i in range(50)]

    wait_for(lambda: len(queue) == 1, timeout=10, message="one batch in the queue")
    (batch,) = queue.batches()
    assert [row[0] for row in batch] == [r.to_wire()[0] for r in records]
    assert logger.stats()["buffered"] == 0


def test_a_batch_is_a_task_message_any_kombu_consumer_reads(make_app, queue, redis_url, trace_id):
    """The body travels as JSON text (``body_encoding`` "utf-8", not kombu's
    base64): kombu's own Redis transport, as any worker has it, decodes it
    into the ``execlog.insert_batch`` task's arguments."""
    import kombu

    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    records = [logger.info(trace_id, LogCategory.AGENT, f"record {i}", details={"i": i}) for i in range(50)]
    assert logger.flush(timeout=10) is True

    (envelope,) = queue.envelopes()
    assert envelope["properties"]["body_encoding"] == "utf-8"
    assert json.loads(envelope["body"])[0] == [2, [r.to_wire() for r in records]]
    with kombu.Connection(redis_url) as connection:
        message = connection.SimpleQueue(queue.queue, no_ack=True).get(timeout=5)
    args, kwargs, _embed = message.decode()
    assert message.headers["task"] == "execlog.insert_batch"
    assert args == [2, [r.to_wire() for r in records]] and kwargs == {}


def test_while_batches_fill_the_flusher_looks_by_itself_and_log_does_not_wake_it(make_app, queue, trace_id):
    """Waking the flusher was the tail of log()'s time: under steady
    traffic the flusher polls, and the log() that fills a batch does not
    call into the event; once traffic stops, the next full batch wakes it
    again."""
    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    buffer = logger.backend
    wakes = []
    real_set = buffer._wake.set

    def counting_set():
        wakes.append(threading.current_thread().name)
        real_set()

    buffer._wake.set = counting_set
    for i in range(2000):  # steady traffic: a record every 0.2 ms or so, 40 batches
        logger.info(trace_id, "agent", f"steady {i}")
        time.sleep(0.0002)  # the traffic's own pace, not a wait for a condition
    assert logger.flush(timeout=10) is True
    batches = len(queue)
    assert batches >= 20
    by_log = [name for name in wakes if name == threading.current_thread().name]
    assert len(by_log) <= batches // 4, f"{len(by_log)} of {batches} batches woken by a log() call"

    wait_for(lambda: not buffer._polling, timeout=10, message="polling stops once records stop")
    wakes.clear()
    for i in range(50):
        logger.info(trace_id, "agent", f"after {i}")
    wait_for(lambda: len(queue) == batches + 1, timeout=10, message="the next batch")
    assert wakes, "light traffic again: the batch's 50th log() woke the flusher"


def test_49_records_wait_for_the_interval(make_app, queue, trace_id):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=1.0).extensions["execlog"]
    started = time.monotonic()
    for i in range(49):
        logger.info(trace_id, "agent", f"record {i}")

    wait_for(lambda: len(queue) == 1, timeout=10, message="the interval flush")
    assert time.monotonic() - started >= 0.95
    assert len(queue.batches()[0]) == 49


def test_one_record_is_shipped_after_about_2_seconds(make_app, queue, trace_id):
    logger = make_app().extensions["execlog"]
    assert logger.settings.flush_interval == 2.0
    started = time.monotonic()
    record = logger.info(trace_id, "workflow", "alone")

    wait_for(lambda: len(queue) == 1, timeout=15, message="the lone record")
    assert time.monotonic() - started >= 1.95
    assert queue.batches() == [[record.to_wire()]]


def test_flush_returns_once_everything_logged_before_is_with_the_broker(make_app, queue, trace_id):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    ids = [logger.debug(trace_id, "tool", f"r{i}").to_wire()[0] for i in range(120)]

    assert logger.flush() is True
    shipped = [row[0] for batch in queue.batches() for row in batch]
    assert shipped == ids
    assert logger.stats()["published"] == 120


def test_flush_with_nothing_buffered_returns_at_once(make_app):
    logger = make_app().extensions["execlog"]
    assert logger.flush(timeout=0) is True


def test_records_from_many_threads_are_shipped_once_each_in_order(make_app, queue):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=0.2).extensions["execlog"]
    traces = [f"thread-{n}-{uuid.uuid4()}" for n in range(8)]

    def produce(trace: str) -> None:
        for i in range(500):
            logger.info(trace, "agent", "step", details={"seq": i})

    threads = [threading.Thread(target=produce, args=(t,)) for t in traces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logger.flush(timeout=30) is True

    rows = [row for batch in queue.batches() for row in batch]
    assert len(rows) == 4000
    assert len({row[0] for row in rows}) == 4000
    assert [row[0] for row in rows] == sorted(row[0] for row in rows), "ids follow shipping order"
    for trace in traces:
        seqs = [row[10]["seq"] for row in rows if row[2] == trace]
        assert seqs == list(range(500))


@pytest.mark.parametrize("durability", ["memory", "disk"])
def test_the_id_is_the_uuid7_of_the_time_and_the_next_counter_even_when_the_clock_steps_back(
        make_app, trace_id, durability, monkeypatch):
    """append() takes the stamp with MonotonicStamp.peek (its UUIDv7 made
    inline) and claims it under its lock: it is what ids.uuid7_hex makes of
    MonotonicStamp's rule."""
    logger = make_app(EXECLOG_DURABILITY=durability).extensions["execlog"]
    readings = [1_800_000_000_123_456_789, 1_800_000_000_123_456_789, 1_700_000_000_000_000_000,
                1_800_000_001_000_000_000]
    clock = iter(readings)
    monkeypatch.setattr("webapp.execlog.ids._time_ns", lambda: next(clock))
    records = [logger.info(trace_id, "agent", f"call {n}") for n in range(4)]
    first_counter = int(records[0][ID], 16) & ((1 << 62) - 1)
    held = [readings[0], readings[0], readings[0], readings[3]]  # the step back is held
    assert [record[ID] for record in records] == [
        uuid7_hex(ns, first_counter + n) for n, ns in enumerate(held)]
    assert [record[CREATED_AT_US] for record in records] == [ns // 1000 for ns in held]
    assert all(uuid.UUID(record[ID]).version == 7 for record in records)


@pytest.mark.parametrize("durability", ["memory", "disk"])
def test_a_record_whose_stamp_another_call_claimed_first_is_stamped_again(
        make_app, queue, trace_id, durability, monkeypatch):
    """append() takes its stamp before the lock and claims it under it; a
    call that claimed the same stamp in between (another thread, after a
    GIL switch) makes it stamp again: ids stay unique and in buffer order,
    and in disk mode the journal holds the row with the new id."""
    from webapp.execlog import buffer
    from webapp.execlog.wire import encode_record

    logger = make_app(EXECLOG_DURABILITY=durability).extensions["execlog"]
    monotonic = buffer._monotonic
    cut_in: list = []

    def monotonic_after_a_cut_in() -> float:
        # append() reads the clock between its stamp and its lock
        if not cut_in:
            cut_in.append(None)
            cut_in.append(logger.info(trace_id, "agent", "cut in"))
        return monotonic()

    monkeypatch.setattr(buffer, "_monotonic", monotonic_after_a_cut_in)
    first = logger.info(trace_id, "agent", "stamped first, claimed second")
    other = cut_in[1]
    assert other[ID] < first[ID]
    assert logger.flush() is True
    assert [row[0] for batch in queue.batches() for row in batch] == [other[ID], first[ID]]
    if durability == "disk":
        assert first.wire_bytes() == encode_record(first, first.limits)


def test_details_are_copied_when_logged(make_app, trace_id):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    details = {"state": "before"}
    record = logger.info(trace_id, "agent", "snapshot", details=details)
    details["state"] = "after"
    assert record.details == {"state": "before"}


def test_a_forked_child_logs_on_its_own_and_does_not_resend_the_parents_records(make_app, queue, trace_id):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    parent_ids = [logger.info(trace_id, "workflow", f"parent {i}").to_wire()[0] for i in range(5)]

    pid = os.fork()
    if pid == 0:  # the child: a fresh buffer, its own flusher thread
        code = 1
        try:
            ok = all(logger.info(trace_id, "workflow", f"child {i}") for i in range(3))
            code = 0 if ok and logger.flush(timeout=20) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    assert logger.flush(timeout=20) is True
    rows = [row for batch in queue.batches() for row in batch]
    messages = [row[5] for row in rows]
    assert sorted(messages) == sorted([f"parent {i}" for i in range(5)] + [f"child {i}" for i in range(3)])
    assert [row[0] for row in rows if row[5].startswith("parent")] == parent_ids


def test_close_ships_what_is_left_and_logging_afterwards_restarts_the_flusher(make_app, queue, trace_id):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    logger.info(trace_id, "workflow", "before close")
    assert logger.close(timeout=10) is True
    assert len(queue) == 1

    logger.info(trace_id, "workflow", "after close")
    assert logger.flush(timeout=10) is True
    assert [row[5] for batch in queue.batches() for row in batch] == ["before close", "after close"]


def test_without_an_app_context_a_thread_logs_through_the_default_logger(make_app, queue, trace_id):
    logger = make_app(EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    results = []

    def outside_any_context() -> None:
        results.append(execution_logger.info(trace_id, "api", "from a bare thread"))

    thread = threading.Thread(target=outside_any_context)
    thread.start()
    thread.join()
    assert logger.flush(timeout=10) is True
    assert queue.batches() == [[results[0].to_wire()]]


class TestBrokerUnreachable:
    @pytest.fixture
    def dead_broker_app(self, app_factory, tmp_path):
        def make(**overrides):
            nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
            return app_factory(CELERY=celery_config(nobody_listens, tmp_path), **overrides)

        return make

    def test_a_batch_that_cannot_be_published_goes_to_the_spool(self, dead_broker_app, trace_id):
        app = dead_broker_app(EXECLOG_FLUSH_INTERVAL=600)
        logger = app.extensions["execlog"]
        ids = [logger.info(trace_id, "agent", f"r{i}").to_wire()[0] for i in range(10)]

        assert logger.flush(timeout=30) is False
        stats = logger.stats()
        assert stats["spooled"] == 10 and stats["published"] == 0 and stats["dropped"] == 0
        assert "OperationalError" in stats["last_error"]
        assert [row[0] for row in spooled_rows(Path(app.config["EXECLOG_SPOOL_DIR"]))] == ids

    def test_beyond_max_buffer_records_go_to_the_spool_not_to_memory(self, dead_broker_app, trace_id):
        app = dead_broker_app(
            EXECLOG_FLUSH_INTERVAL=600, EXECLOG_BATCH_SIZE=1000, EXECLOG_MAX_BUFFER=1000
        )
        logger = app.extensions["execlog"]
        ids = []
        for i in range(5000):
            ids.append(logger.info(trace_id, "agent", f"r{i}").to_wire()[0])
            assert logger.stats()["buffered"] <= 1000

        logger.close(timeout=30)
        assert logger.stats()["dropped"] == 0
        stored = sorted(row[0] for row in spooled_rows(Path(app.config["EXECLOG_SPOOL_DIR"])))
        assert stored == sorted(ids)

    def test_when_even_the_spool_fails_records_are_counted_as_dropped_and_reported(
        self, dead_broker_app, trace_id, tmp_path, caplog
    ):
        not_a_directory = tmp_path / "occupied"
        not_a_directory.write_text("a file where the spool directory should be")
        app = dead_broker_app(
            EXECLOG_FLUSH_INTERVAL=600, EXECLOG_BATCH_SIZE=100, EXECLOG_MAX_BUFFER=100,
            EXECLOG_SPOOL_DIR=str(not_a_directory),
        )
        logger = app.extensions["execlog"]
        with caplog.at_level(logging.WARNING, logger="webapp.execlog"):
            for i in range(130):
                logger.info(trace_id, "agent", f"r{i}")
            logger.close(timeout=30)

        assert logger.stats()["dropped"] == 130
        warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert warnings and len(warnings) <= 2, "one warning per interval, not one per record"


def written_segments(spool_dir: Path) -> set[str]:
    """The segments that hold records (a spare is all zeros)."""
    found = set()
    for path in spool_dir.glob("*.seg"):
        try:
            with path.open("rb") as segment:
                if segment.read(1) not in (b"", b"\x00"):
                    found.add(path.name)
        except FileNotFoundError:  # finished meanwhile
            pass
    return found


def test_a_busy_journal_keeps_its_segment_and_a_quiet_one_lets_it_go(make_app, queue, trace_id, tmp_path):
    """Disk durability (the default): shipping every record must not cost a
    new segment per batch (each one created and prefaulted: 40 to 90 us of
    flusher CPU a record at a steady rate); once the process goes quiet,
    the segment of records all published is removed."""
    spool_dir = tmp_path / "journal"
    logger = make_app(EXECLOG_SPOOL_DIR=str(spool_dir)).extensions["execlog"]
    assert logger.stats()["durability"] == "disk"
    seen: set[str] = set()
    for batch in range(10):
        for i in range(50):
            logger.info(trace_id, LogCategory.AGENT, f"record {batch}.{i}")
        assert logger.flush(timeout=10)
        seen |= written_segments(spool_dir)
    assert len(queue) == 10
    assert len(seen) == 1, f"one segment for 10 batches, not {sorted(seen)}"

    wait_for(lambda: not written_segments(spool_dir), timeout=10,
             message="the quiet process's published segment to go")
    assert spooled_rows(spool_dir) == []


def test_a_new_process_replays_what_dead_ones_left_at_once_not_a_tick_at_a_time(make_app, queue, tmp_path):
    """The flusher replays the spool on its first tick, and goes on at once
    while segments wait: a replay cut short by its time budget does not wait
    for the next tick (a process that starts after a long outage empties its
    backlog at the broker's speed)."""
    from webapp.execlog.spool import Spool

    from ..support.records import make_rows

    spool_dir = tmp_path / "left-by-the-dead"
    rows = make_rows(str(uuid.uuid4()), 50)
    for start in range(0, 50, 10):
        Spool(spool_dir).write_rows([json.dumps(row).encode() for row in rows[start:start + 10]])
    logger = make_app(EXECLOG_SPOOL_DIR=str(spool_dir), EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    logger.backend.tick_interval = 3600  # no tick on the clock during this test
    logger.backend.shipper.replay_budget = 1e-9  # one segment a tick

    logger.start()
    wait_for(lambda: logger.stats()["replayed"] == 50, timeout=10,
             message="the five segments replayed without waiting for the clock")
    assert sorted(row[0] for batch in queue.batches() for row in batch) == sorted(row[0] for row in rows)
