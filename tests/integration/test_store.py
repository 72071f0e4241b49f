"""What the worker sends to PostgreSQL for one batch."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa

from webapp.execlog.store import store_rows

from ..support.records import make_rows


class Recorder:
    """psycopg2 connections that note what they send: statements, COPY, COMMIT."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.sent: list[str] = []

    def connect(self) -> psycopg2.extensions.connection:
        sent = self.sent

        class Cursor(psycopg2.extensions.cursor):
            def execute(self, query, params=None):
                sent.append(str(query))
                return super().execute(query, params)

            def copy_expert(self, sql, file, size=8192):
                sent.append(sql)
                return super().copy_expert(sql, file, size)

        class Connection(psycopg2.extensions.connection):
            def cursor(self, *args, **kwargs):
                kwargs.setdefault("cursor_factory", Cursor)
                return super().cursor(*args, **kwargs)

            def commit(self):
                sent.append("COMMIT")
                return super().commit()

            def rollback(self):
                if self.status != psycopg2.extensions.STATUS_READY:  # something to roll back
                    sent.append("ROLLBACK")
                return super().rollback()

        return psycopg2.connect(self.dsn, connection_factory=Connection)

    def ours(self) -> list[str]:
        """What concerned the logs, with the commits and rollbacks."""
        kept = [s for s in self.sent if "execution_logs" in s or "execlog_stage" in s or s.isupper()]
        self.sent.clear()
        return [" ".join(s.split()[:3]) for s in kept]


def test_a_new_batch_is_one_copy_in_one_transaction_and_a_repeated_one_is_skipped(
    database_url, log_table, trace_id
):
    recorder = Recorder(sa.make_url(database_url).set(drivername="postgresql")
                        .render_as_string(hide_password=False))
    engine = sa.create_engine("postgresql+psycopg2://", creator=recorder.connect, poolclass=sa.pool.NullPool)
    rows = make_rows(trace_id, 500)
    try:
        store_rows(engine, rows[:1])  # the engine's first connection asks the server a few things
        recorder.sent.clear()
        first = store_rows(engine, rows[1:])
        sent_first = recorder.ours()
        again = store_rows(engine, rows)
        sent_again = recorder.ours()
    finally:
        engine.dispose()

    assert sent_first == ["COPY execution_logs (id,", "COMMIT"], "one COPY, one transaction"
    assert sent_again[:2] == ["COPY execution_logs (id,", "ROLLBACK"], "a stored row fails the COPY"
    assert sent_again[2:] == ["CREATE TEMPORARY TABLE", "COPY execlog_stage (id,",
                              "INSERT INTO execution_logs", "COMMIT"], "then the staging table, skipping"
    assert (first.inserted, first.dead, again.inserted, again.duplicates) == (499, 0, 0, 500)
    assert log_table.count(trace_id) == 500


def test_text_that_means_something_to_copy_round_trips_exactly(database_url, log_table, trace_id):
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    tricky = 'a,b "quoted" \\N \\ back\\slash\ttab\nnew line\r\n ; \\. end'
    rows = make_rows(trace_id, 3)
    rows[0][5] = tricky
    rows[1][6] = "step,with,commas"
    rows[1][10] = {"q": 'say "hi"', "path": "C:\\dir", "nl": "a\nb"}
    rows[2][5] = "\\N"  # the text a NULL would be in COPY's text format
    try:
        store_rows(engine, rows)
    finally:
        engine.dispose()
    stored = log_table.rows(trace_id)
    assert stored[0]["message"] == tricky
    assert stored[1]["step"] == "step,with,commas"
    assert stored[1]["details"] == {"q": 'say "hi"', "path": "C:\\dir", "nl": "a\nb"}
    assert stored[2]["message"] == "\\N"
