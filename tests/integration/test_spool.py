"""The local spool: ownership by file lock, adoption, replay into the table."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import orjson
import pytest

from webapp.config import celery_config
from webapp.execlog.spool import Spool

from ..conftest import service_env
from ..support.processes import ROOT, free_port, start_celery_worker
from ..support.records import make_rows
from ..support.waiting import wait_for


def encoded(rows: list[list]) -> list[bytes]:
    return [orjson.dumps(row) for row in rows]


HOLD_A_SEGMENT = textwrap.dedent(
    """
    import sys
    from webapp.execlog.spool import Spool
    segment = Spool(sys.argv[1]).new_segment()
    segment.append(b'["held"]\\n')
    print("holding", flush=True)
    sys.stdin.read()  # until the test kills this process
    """
)


def test_a_segment_is_claimable_only_once_its_writer_is_dead(tmp_path):
    spool = Spool(tmp_path / "spool")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_SEGMENT, str(spool.directory)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"holding\n"
        assert len(spool.segment_paths()) == 1
        assert list(spool.claimable()) == [], "a live writer's segment is not claimable"
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()

    (claimed,) = list(spool.claimable())
    assert claimed.read_rows() == ([b'["held"]'], [])
    claimed.delete()
    assert spool.segment_paths() == []


def test_a_claimed_segment_is_not_claimed_twice(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.write_rows([b'["a"]'])
    (first,) = list(spool.claimable())
    assert list(spool.claimable()) == []
    first.delete()
    assert list(spool.claimable()) == []


def test_lines_cut_short_by_a_crash_are_set_aside_not_lost(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.ensure_directory()
    (spool.directory / "00000000000000000001-1-ab.seg").write_bytes(b'["ok", 1]\n["cut sho')
    (claimed,) = list(spool.claimable())
    rows, bad = claimed.read_rows()
    assert rows == [b'["ok", 1]'] and bad == [b'["cut sho']
    kept = spool.keep_bad_lines(claimed.path, bad)
    assert kept.read_bytes() == b'["cut sho\n'


@pytest.mark.usefixtures("celery_worker")
class TestReplay:
    def test_a_live_producer_adopts_and_replays_segments_left_in_its_spool(
        self, app_factory, log_table, trace_id, tmp_path
    ):
        rows = make_rows(trace_id, 30)
        spool_dir = tmp_path / "shared-spool"
        Spool(spool_dir).write_rows(encoded(rows[:10]))
        Spool(spool_dir).write_rows(encoded(rows[10:]))
        left_behind = set(Spool(spool_dir).segment_paths())

        app = app_factory(EXECLOG_SPOOL_DIR=str(spool_dir), EXECLOG_FLUSH_INTERVAL=0.2)
        logger = app.extensions["execlog"]
        logger.info(trace_id, "workflow", "fresh record")  # starts the flusher, which replays

        stored = log_table.wait_for_count(trace_id, 31)
        assert {str(r["id"]).replace("-", "") for r in stored} >= {row[0] for row in rows}
        wait_for(lambda: not left_behind & set(Spool(spool_dir).segment_paths()), timeout=10,
                 message="the adopted segments to go (the live journal's own stay)")
        assert logger.stats()["replayed"] == 30

    @pytest.mark.parametrize("pool", ["solo", "threads"])
    def test_a_worker_whose_pool_does_not_fork_replays_at_start(
        self, database_url, redis_url, log_table, trace_id, tmp_path, pool
    ):
        """A Celery worker whose tasks run in its own process starts its
        flusher when it is ready, so the segments dead processes left are
        replayed before it runs any task (it consumes a queue nobody uses)."""
        rows = make_rows(trace_id, 20)
        spool_dir = tmp_path / "worker-spool"
        Spool(spool_dir).write_rows(encoded(rows))
        env = service_env(database_url, redis_url, tmp_path / "var", EXECLOG_SPOOL_DIR=str(spool_dir))
        worker = start_celery_worker(env, tmp_path / "worker.log", name=f"{pool}-{uuid.uuid4().hex[:6]}",
                                     queues=f"unused-{uuid.uuid4().hex[:8]}", concurrency=1,
                                     extra=["--pool", pool])
        try:
            log_table.wait_for_count(trace_id, 20)
        finally:
            worker.stop()

    def test_flask_execlog_replay_replays_everything_and_reports(self, app_factory, log_table, trace_id,
                                                                 tmp_path):
        rows = make_rows(trace_id, 12)
        spool_dir = tmp_path / "spool-for-cli"
        for start in range(0, 12, 4):
            Spool(spool_dir).write_rows(encoded(rows[start:start + 4]))

        app = app_factory(EXECLOG_SPOOL_DIR=str(spool_dir), EXECLOG_FLUSH_INTERVAL=600)
        result = app.test_cli_runner().invoke(args=["execlog", "replay"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "replayed 12 record(s) from 3 segment(s); 0 segment(s) left"
        log_table.wait_for_count(trace_id, 12)

    def test_replay_with_the_broker_down_keeps_the_segments_and_says_why(self, app_factory, trace_id,
                                                                         tmp_path):
        rows = make_rows(trace_id, 3)
        spool_dir = tmp_path / "spool-broker-down"
        Spool(spool_dir).write_rows(encoded(rows))
        app = app_factory(EXECLOG_SPOOL_DIR=str(spool_dir),
                          CELERY=celery_config(f"redis://127.0.0.1:{free_port()}/0", tmp_path))
        result = app.test_cli_runner().invoke(args=["execlog", "replay"])
        assert result.exit_code == 1
        assert "replayed 0 record(s) from 0 segment(s); 1 segment(s) left" in result.output
        assert "the celery sink is down: OperationalError" in result.output
        assert len(Spool(spool_dir).segment_paths()) == 1


def test_flask_execlog_status_reports_counters_queue_and_spool(app_factory, tmp_path):
    # Memory mode: the spool then holds only what this test puts there: a
    # segment a live process holds (one a dead process left would be
    # replayed by the flusher as it starts).
    app = app_factory(EXECLOG_FLUSH_INTERVAL=600, EXECLOG_DURABILITY="memory")
    spool_dir = Path(app.config["EXECLOG_SPOOL_DIR"])
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_SEGMENT, str(spool_dir)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"holding\n"
        (held,) = Spool(spool_dir).segment_paths()
        app.extensions["execlog"].info(f"status-{uuid.uuid4()}", "api", "one")
        result = app.test_cli_runner().invoke(args=["execlog", "status", "--json"])
        text = app.test_cli_runner().invoke(args=["execlog", "status"]).output
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()

    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["buffered"] == 1
    assert status["spool_segments"] == 1 and status["spool_bytes"] == held.stat().st_size
    assert isinstance(status["queue_length"], int)
    for key in ("in_flight", "published", "spooled", "replayed", "dropped", "last_error"):
        assert key in status
    assert "queue_length" in text and "spool_segments   1" in text


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


@pytest.mark.parametrize("details", [
    {"tool_name": "catalog.search", "hits": 3, "ok": True, "none": None},
    {"ratio": 0.25, "nested": {"a": [1, 2, {"b": "c"}]}},
    {"nan": float("nan"), "inf": float("inf"), "minus": float("-inf")},
    {"deep": json.loads("[" * 40 + "]" * 40)},
    {"nul": "a\x00b", "a\x00key": 1},
    {"surrogate": "a\ud800b"},
    {1: "int key", None: "none key"},
    {"when": _Opaque(), "big": 2**70},
    {"huge": "x" * 70_000},
    None,
], ids=["plain", "nested", "nan", "deep", "nul", "surrogate", "keys", "objects", "oversize", "none"])
def test_disk_mode_journals_the_line_encode_record_makes(app_factory, tmp_path, trace_id, details):
    """JournaledBuffer.append encodes and journals the common case inline;
    whatever the record, the journal holds what encode_record makes of it."""
    from webapp.execlog.buffer import JournaledBuffer
    from webapp.execlog.wire import encode_record

    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    app = app_factory(CELERY=celery_config(nobody_listens, tmp_path), EXECLOG_PROBE_INTERVAL=30)
    logger = app.extensions["execlog"]
    assert isinstance(logger.backend, JournaledBuffer)
    record = logger.info(trace_id, "agent", "caf\u00e9 message", details=details)
    journaled = record.wire_bytes()  # read back from the segment
    assert record.journal_entry is not None
    assert journaled == encode_record(record, record.limits)


def test_in_disk_mode_a_record_is_its_details_as_they_were_at_log(app_factory, tmp_path, trace_id):
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    logger = app_factory(CELERY=celery_config(nobody_listens, tmp_path),
                         EXECLOG_PROBE_INTERVAL=30).extensions["execlog"]
    details = {"step": 1, "nested": {"seen": ["a"]}}
    record = logger.info(trace_id, "agent", "snapshot", details=details)
    details["step"] = 2
    details["nested"]["seen"].append("b")
    assert record.details == {"step": 1, "nested": {"seen": ["a"]}}


def test_the_flusher_reads_a_chunk_back_from_the_journal_as_its_lines(app_factory, tmp_path, trace_id):
    """A chunk of journaled records is read back in one slice of their
    segment when they lie there one after the other, else line by line:
    the same rows either way."""
    from webapp.execlog.spool import journaled_batch

    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    logger = app_factory(CELERY=celery_config(nobody_listens, tmp_path), EXECLOG_PROBE_INTERVAL=30,
                         EXECLOG_BATCH_SIZE=1000, EXECLOG_FLUSH_INTERVAL=600).extensions["execlog"]
    records = [logger.info(trace_id, "agent", f"record {i}", details={"i": i, "text": "caf\u00e9 \" ,"})
               for i in range(30)]
    lines = [orjson.loads(bytes(record.journal_entry.line_at(record.journal_at))) for record in records]

    batch = journaled_batch(records)
    assert batch.decode() == lines
    assert all(record.encoded is None for record in records), "one slice, not a line at a time"

    apart = records[:5] + records[6:]  # a line that is not the chunk's sits between
    assert journaled_batch(apart).decode() == lines[:5] + lines[6:]
    not_journaled = records[:3]
    not_journaled[1].journal_entry = None  # as when the journal could not take it
    not_journaled[1].encoded = orjson.dumps(lines[1])
    assert journaled_batch(not_journaled).decode() == lines[:3]
