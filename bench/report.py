"""The benchmark's results as a markdown report and a PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

COLUMNS = [
    ("backend", "back end", "{}"),
    ("requests_per_s", "req/s", "{:,.0f}"),
    ("latency_p50_ms", "request p50 ms", "{:.1f}"),
    ("latency_p99_ms", "request p99 ms", "{:.1f}"),
    ("log_p50_us", "log() wall p50 us", "{:.1f}"),
    ("log_p99_us", "log() wall p99 us", "{:.1f}"),
    ("log_cpu_p50_us", "log() CPU p50 us", "{:.1f}"),
    ("log_cpu_p99_us", "log() CPU p99 us", "{:.1f}"),
    ("producer_cpu_us_per_record", "producer CPU us / record", "{:.1f}"),
    ("web_cpu_ms_per_request", "web CPU ms / request", "{:.2f}"),
    ("web_backends_peak", "web-tier backends (peak)", "{}"),
    ("total_backends_peak", "all backends (peak)", "{}"),
    ("transactions_per_1000", "transactions / 1,000 records", "{:,.1f}"),
    ("end_to_end_records_per_s", "end-to-end records/s", "{:,.0f}"),
    ("visible_p50_s", "log()->visible p50 s", "{:.2f}"),
    ("visible_p99_s", "log()->visible p99 s", "{:.2f}"),
    ("errors", "errors", "{}"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]]) -> str:
    """Each back end against ``direct``, stated."""
    direct = next((row for row in rows if row["backend"] == "direct"), None)
    if direct is None:
        return ""
    lines = []
    for row in rows:
        if row["backend"] in ("direct", "no logging"):
            continue
        parts = []
        for key, label, better in (("requests_per_s", "requests/s", "higher"),
                                   ("latency_p99_ms", "request p99", "lower"),
                                   ("transactions_per_1000", "transactions per record", "lower"),
                                   ("end_to_end_records_per_s", "end-to-end records/s", "higher")):
            if direct.get(key) and row.get(key):
                parts.append(f"{label} x{row[key] / direct[key]:.2f} ({better} is better)")
        lines.append(f"* **{row['backend']}** against **direct**: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def overhead(rows: list[dict[str, Any]]) -> str:
    baseline = next((row for row in rows if row["backend"] == "no logging"), None)
    if baseline is None or not baseline.get("latency_p99_ms"):
        return ""
    lines = []
    for row in rows:
        if row["backend"] != "no logging" and row.get("latency_p99_ms"):
            ratio = row["latency_p99_ms"] / baseline["latency_p99_ms"]
            lines.append(f"* **{row['backend']}**: request p99 x{ratio:.2f} "
                         "of the same request with logging disabled")
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["backend"] for row in rows]
    figure, (latency, connections) = plt.subplots(1, 2, figsize=(12, 4.5))
    positions = range(len(names))
    latency.bar([p - 0.2 for p in positions], [row["latency_p50_ms"] for row in rows], 0.4, label="p50")
    latency.bar([p + 0.2 for p in positions], [row["latency_p99_ms"] for row in rows], 0.4, label="p99")
    latency.set_title("request latency (ms)")
    latency.set_xticks(list(positions), names, rotation=20)
    latency.legend()
    connections.bar([p - 0.2 for p in positions], [row["web_backends_peak"] for row in rows], 0.4,
                    label="web tier")
    connections.bar([p + 0.2 for p in positions], [row["total_backends_peak"] for row in rows], 0.4,
                    label="all")
    connections.set_title("PostgreSQL backends (peak)")
    connections.set_xticks(list(positions), names, rotation=20)
    connections.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
