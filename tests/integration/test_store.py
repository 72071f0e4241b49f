"""What the worker sends to PostgreSQL for one batch."""

from __future__ import annotations

import logging

import psycopg2.extras
import sqlalchemy as sa

from webapp.execlog.store import store_rows

from ..support.records import make_rows


class StatementLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg
        self.statements.append(message.decode() if isinstance(message, bytes) else str(message))


def test_a_batch_is_one_copy_and_one_insert_in_one_transaction(database_url, log_table, trace_id):
    statements = StatementLog()
    sql_logger = logging.getLogger(f"sql-{trace_id}")
    sql_logger.addHandler(statements)
    sql_logger.setLevel(logging.DEBUG)
    sql_logger.propagate = False
    dsn = sa.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    def logging_connection():
        connection = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LoggingConnection)
        connection.initialize(sql_logger)
        return connection

    engine = sa.create_engine("postgresql+psycopg2://", creator=logging_connection,
                              poolclass=sa.pool.NullPool)

    rows = make_rows(trace_id, 500)
    try:
        result = store_rows(engine, rows)
        again = store_rows(engine, rows)
    finally:
        engine.dispose()

    inserts = [s for s in statements.statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2, "one INSERT per batch, not one per row"
    assert "SELECT" in inserts[0] and "ON CONFLICT DO NOTHING" in inserts[0]
    ours = [s for s in statements.statements if "execlog_stage" in s or "execution_logs" in s]
    assert len(ours) == 4, "a CREATE TEMP TABLE IF NOT EXISTS and an INSERT per batch; COPY carries the rows"
    assert (result.inserted, result.dead, again.inserted, again.duplicates) == (500, 0, 0, 500)
    assert log_table.count(trace_id) == 500


def test_text_that_means_something_to_copy_round_trips_exactly(database_url, log_table, trace_id):
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    tricky = 'a,b "quoted" \\N \\ back\\slash\ttab\nnew line\r\n ; \\. end'
    rows = make_rows(trace_id, 3)
    rows[0][5] = tricky
    rows[1][6] = "step,with,commas"
    rows[1][10] = '{"q":"say \\"hi\\"","path":"C:\\\\dir","nl":"a\\nb"}'
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
