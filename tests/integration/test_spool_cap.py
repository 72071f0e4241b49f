"""The spool at EXECLOG_SPOOL_MAX_BYTES: what it refuses is dropped and
counted, never silently, and the service says so."""

from __future__ import annotations

import logging

import pytest

from webapp.config import celery_config
from webapp.execlog.spool import Spool, SpoolFull

from ..support.processes import free_port

CAP = 1024 * 1024


def test_a_spool_at_its_cap_refuses_segments_and_set_aside_lines(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=CAP)
    assert spool.segment_bytes == CAP // 4
    segments = [spool.new_segment(spool.segment_bytes) for _ in range(4)]
    assert spool.full
    with pytest.raises(SpoolFull, match="EXECLOG_SPOOL_MAX_BYTES"):
        spool.new_segment(spool.segment_bytes)
    with pytest.raises(SpoolFull):
        spool.keep_bad_lines(segments[0].path, [b"x" * 100])
    segments[0].finish(keep=False)
    spool.refresh()
    assert not spool.full and spool.bytes == 3 * CAP // 4
    for segment in segments[1:]:
        segment.finish(keep=False)


@pytest.fixture
def capped_app(app_factory, tmp_path):
    """Disk durability (the default), a broker nobody answers, a 1 MiB spool."""
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    return app_factory(CELERY=celery_config(nobody_listens, tmp_path), EXECLOG_SPOOL_MAX_BYTES=CAP,
                       EXECLOG_SPOOL_DIR=str(tmp_path / "spool"), EXECLOG_PROBE_INTERVAL=30)


def test_records_beyond_the_cap_are_dropped_counted_and_reported(capped_app, trace_id, caplog):
    logger = capped_app.extensions["execlog"]
    assert logger.stats()["durability"] == "disk"
    with caplog.at_level(logging.WARNING, logger="webapp.execlog"):
        for i in range(20_000):  # about 4 MB of records: four times the cap
            logger.info(trace_id, "agent", f"record {i}", details={"i": i, "pad": "x" * 100})
        logger.flush(timeout=30)

    stats = logger.stats()
    assert logger.spool_full
    assert stats["dropped"] > 0, "the spool refused what was beyond its cap"
    assert stats["dropped"] + stats["buffered"] + stats["spooled"] >= 20_000
    assert logger.dropped_for(trace_id, None) == stats["dropped"]
    assert Spool(capped_app.config["EXECLOG_SPOOL_DIR"]).usage().bytes <= CAP + Spool(
        capped_app.config["EXECLOG_SPOOL_DIR"], max_bytes=CAP).segment_bytes
    assert any("dropped" in r.getMessage() and "spool is full" in r.getMessage() for r in caplog.records)


def test_post_logs_answers_503_with_retry_after_while_the_spool_is_full(capped_app, trace_id):
    logger = capped_app.extensions["execlog"]
    for i in range(20_000):
        logger.info(trace_id, "agent", f"record {i}", details={"pad": "x" * 100})
    assert logger.spool_full
    client = capped_app.test_client()
    body = {"records": [{"trace_id": trace_id, "level": "info", "category": "api", "message": "late"}]}

    refused = client.post("/api/v1/logs", json=body)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "30"
    assert refused.content_type == "application/problem+json"
    assert refused.json["type"] == "urn:webapp:problem:spool-full"

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["spool"]["ok"] is False
    assert ready.json["logger"]["spool_full"] is True


def test_a_write_bigger_than_a_segment_that_the_cap_refuses_makes_the_spool_full(tmp_path):
    """A batch the broker refused is written as one file of its size: when
    the cap refuses it, the spool says it is full (POST /logs answers 503)
    until there is room for it, not only when a segment would not fit."""
    spool = Spool(tmp_path / "spool", max_bytes=CAP)
    spool.write_rows([b"x" * 1000] * 600)  # 600 KB
    assert not spool.full
    with pytest.raises(SpoolFull):
        spool.write_rows([b"y" * 1000] * 600)
    assert spool.full, "the refused batch would not fit: full, though a segment would"
    for path in spool.segment_paths():
        path.unlink()
    spool.refresh()
    assert not spool.full
