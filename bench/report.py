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


# -- the targets of the producer path (issue "the producer path at the floor") --

def _row(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((row for row in rows if row.get(key) == value), None)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def targets(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each target with what was measured in this run and whether it is met."""
    producer = results["producer"]
    at_50 = _row(producer, "case", "webapp-50")
    saturated = _row(producer, "case", "webapp-saturated")
    isolated, steady = results["isolated"], results["isolated_steady"]
    quiet = _row(isolated, "backend", "no logging")
    logged = _row(isolated, "backend", "celery (memory)")
    quiet_steady = _row(steady, "backend", "no logging")
    logged_steady = _row(steady, "backend", "celery (memory)")
    drain = next((row for row in results["drains"] if (row["processes"], row["prefetch"]) == (1, 4)), None)
    found = [
        ("producer CPU per record, batches of 50, one thread: at most 1.5x the floor",
         at_50 and at_50["ratio_to_floor"], lambda r: r <= 1.5, "x{:.3f}"),
        ("producer CPU per record, saturated: at most 1.2x the floor",
         saturated and saturated["ratio_to_floor"], lambda r: r <= 1.2, "x{:.3f}"),
        ("web tier alone, saturated: req/s at least 0.85x of no logging",
         _ratio(logged and logged["requests_per_s"], quiet and quiet["requests_per_s"]),
         lambda r: r >= 0.85, "x{:.3f}"),
        ("web tier alone, 100 req/s: request p99 at most 1.3x of no logging",
         _ratio(logged_steady and logged_steady["latency_p99_ms"],
                quiet_steady and quiet_steady["latency_p99_ms"]), lambda r: r <= 1.3, "x{:.3f}"),
        ("`log()` CPU in the request thread, saturated: p99 at most 15 us",
         logged and logged["log_cpu_p99_us"], lambda v: v <= 15, "{:.1f} us"),
        ("worker tier: one process at least 0.9x of COPY alone on one connection",
         drain and drain.get("copy_ratio"), lambda r: r >= 0.9, "x{:.3f}"),
    ]
    return [{"target": name, "measured": None if value is None else fmt.format(value),
             "met": None if value is None else bool(check(value))}
            for name, value, check, fmt in found]


def targets_table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| target | measured | |", "|---|---|---|"]
    for item in targets(results):
        verdict = "n/a" if item["met"] is None else ("met" if item["met"] else "**missed**")
        lines.append(f"| {item['target']} | {item['measured'] or 'n/a'} | {verdict} |")
    return "\n".join(lines)


PRODUCER_COLUMNS = [
    ("title", "case", "{}"),
    ("cpu_us_per_record", "producer CPU us / record", "{:.2f}"),
    ("ratio_to_floor", "against the floor", "x{:.2f}"),
    ("batch_records_p50", "records a message (p50)", "{:.0f}"),
    ("batch_cpu_p99_us", "CPU of one batch, p99 us", "{:,.0f}"),
]


def producer_section(rows: list[dict[str, Any]], records: int, repeats: int) -> str:
    return "\n".join([
        "## What shipping costs the producer (`bench/producer.py`)",
        "",
        f"The same {records:,} records (a short message, six `details` keys) from one thread to "
        "Redis, no worker consuming; the CPU of the whole process (the calling thread and any "
        f"shipping thread) per record, medians of {repeats} runs taking turns, each in a process "
        "of its own. The floor is what shipping to Redis can possibly cost: the records as plain "
        "lists, orjson-encoded 50 a message, one redis-py `LPUSH` each, no Celery. \"CPU of one "
        "batch\" is what the flusher spent on a message: a bound on the longest time it held "
        "the GIL in one go.",
        "",
        table(rows, PRODUCER_COLUMNS),
    ])


ISOLATED_COLUMNS = [
    ("backend", "back end", "{}"),
    ("requests_per_s", "req/s", "{:,.0f}"),
    ("latency_p50_ms", "request p50 ms", "{:.1f}"),
    ("latency_p99_ms", "request p99 ms", "{:.1f}"),
    ("log_cpu_p50_us", "log() CPU p50 us", "{:.1f}"),
    ("log_cpu_p99_us", "log() CPU p99 us", "{:.1f}"),
    ("log_cpu_first_p99_us", "log() CPU p99 us, a request's 1st call", "{:.1f}"),
    ("log_cpu_others_p99_us", "log() CPU p99 us, the other calls", "{:.1f}"),
    ("flusher_cpu_us_per_record", "flusher CPU us / record", "{:.1f}"),
    ("web_cpu_ms_per_request", "web CPU ms / request", "{:.2f}"),
    ("records_logged", "records logged", "{:,}"),
    ("records_queued", "found queued", "{:,}"),
    ("records_stored", "stored after", "{:,}"),
    ("errors", "errors", "{}"),
]


def isolated_section(saturated: list[dict[str, Any]], steady: list[dict[str, Any]], sizes: Any) -> str:
    return "\n".join([
        "## The service's cost: the web tier while no worker consumes",
        "",
        "In production the Celery workers run on other hosts; here they would share the web tier's "
        "two cores. So the web tier runs alone: the batches wait in Redis, and once gunicorn has "
        "stopped they are counted there, then a worker drains them and every record is found in "
        f"the table (warm-up included). {sizes.requests} requests as fast as they are answered, "
        f"then {sizes.steady_requests} at a steady {sizes.steady_rate:.0f} requests/s, each logging "
        f"{sizes.records} records; medians of {sizes.repeats} runs taking turns. `log()` CPU is "
        "also split into the first call of each timed request (made after the request's own work "
        "has filled the CPU's caches) and the other calls.",
        "",
        "Saturated:",
        "",
        table(saturated, ISOLATED_COLUMNS),
        "",
        f"At {sizes.steady_rate:.0f} requests/s:",
        "",
        table(steady, ISOLATED_COLUMNS),
    ])


README_BEGIN = "<!-- bench: begin (written by make bench) -->"
README_END = "<!-- bench: end -->"


def update_readme(readme: Path, results: dict[str, list[dict[str, Any]]], sizes: Any, link: str) -> None:
    """Write the targets and the producer and web-tier tables of this run
    between the README's markers."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise RuntimeError(f"{readme} has no benchmark markers")
    head, rest = text.split(README_BEGIN, 1)
    _old, tail = rest.split(README_END, 1)
    section = "\n".join([
        README_BEGIN,
        f"From `make bench` ({link}):",
        "",
        targets_table(results),
        "",
        table(results["producer"], PRODUCER_COLUMNS),
        "",
        "The web tier alone, no worker consuming (saturated, then at "
        f"{sizes.steady_rate:.0f} requests/s):",
        "",
        table(results["isolated"], ISOLATED_COLUMNS[:8]),
        "",
        table(results["isolated_steady"], ISOLATED_COLUMNS[:8]),
        README_END,
    ])
    readme.write_text(head + section + tail)
