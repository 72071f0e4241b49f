"""The benchmark's summary of repeated runs."""

from __future__ import annotations

import pytest

from bench.run import combine


def run(p99: float, errors: int, peak: int, visible: float | None) -> dict:
    return {"backend": "celery", "requests": 100, "records": 5000, "errors": errors,
            "latency_p99_ms": p99, "web_backends_peak": peak, "visible_p99_s": visible,
            "statuses": {"200": 100 - errors, "500": errors}, "socket_errors": ["reset"] * errors}


def test_medians_peaks_and_totals():
    row = combine([run(30.0, 0, 1, 1.0), run(10.0, 2, 4, 3.0), run(20.0, 1, 2, None)])
    assert row["runs"] == 3
    assert row["latency_p99_ms"] == pytest.approx(20.0)
    assert row["visible_p99_s"] == pytest.approx(2.0)  # of the runs that had it
    assert row["web_backends_peak"] == 4
    assert (row["requests"], row["records"], row["errors"]) == (300, 15000, 3)
    assert row["statuses"] == {"200": 297, "500": 3}
    assert row["socket_errors"] == ["reset"] * 3
