"""What PostgreSQL itself takes: the same rows inserted with no app between.

Three ways, each on one connection and on two in parallel (processes):
a multi-row ``INSERT ... VALUES ... ON CONFLICT DO NOTHING`` (psycopg2's
``execute_values``), a plain ``COPY`` into ``execution_logs``, and the
worker's own function (:func:`webapp.execlog.store.store_rows`: checks,
then a ``COPY``, the staging table only for repeated rows, on a pooled
engine as the worker's). Batches of 1,000 rows, one transaction each. Each
process times itself from its first batch to its last commit, connected
before: starting processes and connecting are not part of the figures.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

import orjson
import psycopg2
import sqlalchemy as sa
from psycopg2.extras import execute_values

from webapp.execlog.fields import COLUMNS
from webapp.execlog.ids import MonotonicStamp

from tests.support.records import make_record

BATCH = 1000
_VALUES_SQL = (
    f"INSERT INTO execution_logs ({', '.join(COLUMNS)}) VALUES %s ON CONFLICT DO NOTHING"
)
_VALUES_TEMPLATE = (
    "(%s, timestamptz 'epoch' + %s * interval '1 microsecond', %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s::jsonb, %s, %s)"
)
_COPY_SQL = f"COPY execution_logs ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"


def make_rows(count: int, trace: str | None = None) -> list[list]:
    """Wire rows shaped like the benchmark's records."""
    stamp = MonotonicStamp()
    trace = trace or f"ceiling-{uuid.uuid4()}"
    details = {"tool_name": "catalog.search", "query": "python basics", "hits": 3}
    return [
        make_record(trace, "info", "tool", f"catalog searched ({i})", stamp=stamp, step="design",
                    agent_name="curriculum", details=details).to_wire()
        for i in range(count)
    ]


def _with_json_details(row: list) -> list:
    return [*row[:10], orjson.dumps(row[10]).decode(), *row[11:]]


def _values(dsn: str, rows: list[list]) -> tuple[float, float]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        started = time.time()
        for start in range(0, len(rows), BATCH):
            execute_values(cursor, _VALUES_SQL, [_with_json_details(r) for r in rows[start:start + BATCH]],
                           template=_VALUES_TEMPLATE, page_size=BATCH)
            connection.commit()
        return started, time.time()


def _copy(dsn: str, rows: list[list]) -> tuple[float, float]:
    """The rows as CSV, the least a client can do for them, then COPY."""
    seconds_text: dict[int, str] = {}
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        started = time.time()
        for start in range(0, len(rows), BATCH):
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            for row in rows[start:start + BATCH]:
                seconds, micro = divmod(row[1], 1_000_000)
                prefix = seconds_text.get(seconds)
                if prefix is None:
                    prefix = seconds_text[seconds] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
                writer.writerow([row[0], f"{prefix}.{micro:06d}+00", *row[2:10],
                                 orjson.dumps(row[10]).decode(), *row[11:]])
            cursor.copy_expert(_COPY_SQL, io.BytesIO(text.getvalue().encode()))
            connection.commit()
        return started, time.time()


def _worker_path(url: str, rows: list[list]) -> tuple[float, float]:
    from webapp.execlog.store import store_rows

    engine = sa.create_engine(url, pool_size=1)
    try:
        with engine.connect():  # the pool's connection, made before the clock starts
            pass
        started = time.time()
        for start in range(0, len(rows), BATCH):
            store_rows(engine, rows[start:start + BATCH])
        return started, time.time()
    finally:
        engine.dispose()


METHODS = {
    "INSERT ... VALUES ... ON CONFLICT": _values,
    "COPY": _copy,
    "the worker's store_rows (COPY; staging and ON CONFLICT for repeats)": _worker_path,
}


def measure(url: str, rows_per_run: int) -> list[dict]:
    """Rows/s of each method on 1 and 2 connections."""
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    results = []
    for name, method in METHODS.items():
        target = url if method is _worker_path else dsn
        for connections in (1, 2):
            parts = [make_rows(rows_per_run // connections) for _ in range(connections)]
            with ProcessPoolExecutor(connections) as pool:
                spans = list(pool.map(method, [target] * connections, parts))
            elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
            results.append({"method": name, "connections": connections,
                            "rows": sum(map(len, parts)), "rows_per_s": sum(map(len, parts)) / elapsed})
    return results
