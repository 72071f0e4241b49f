"""execution_logs.attempt, value checks on execution_logs, the trace of a dead letter

Revision ID: 0006_log_attempt_and_checks
Revises: 0005_execution_heartbeat
Create Date: 2026-12-03

* ``execution_logs.attempt``: the run of the execution that logged a record
  (NULL for records from elsewhere), so that an execution's log can be told
  complete or not per run.
* CHECK constraints on the values of a record (level, category, lengths, a
  finite duration): the worker checks a row's types and lets PostgreSQL
  check its values while COPY stores it; a refused row is dead-lettered on
  its own. Rows stored before were checked by the worker in Python, so they
  pass (the constraints are validated: on a large table, run this in a quiet
  hour).
* ``execution_log_dead_letters.trace_id`` and ``attempt``: which execution's
  log a refused record belonged to.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_log_attempt_and_checks"
down_revision = "0005_execution_heartbeat"
branch_labels = None
depends_on = None

LEVELS = ("debug", "info", "warning", "error")
CATEGORIES = ("workflow", "agent", "tool", "database", "api", "retry")
OPTIONAL = ("step", "agent_name", "roadmap_id", "concept_id")


def _one_of(values):
    return ", ".join(f"'{v}'" for v in values)


CHECKS = {
    "level_known": f"level IN ({_one_of(LEVELS)})",
    "category_known": f"category IN ({_one_of(CATEGORIES)})",
    "trace_id_length": "length(trace_id) BETWEEN 1 AND 255",
    "message_not_empty": "length(message) >= 1",
    "identifiers_length": " AND ".join(f"length({c}) <= 255" for c in OPTIONAL),
    "duration_finite": "duration_ms BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308",
    "attempt_not_negative": "attempt >= 0",
}


def upgrade():
    with op.batch_alter_table("execution_logs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
        for name, condition in CHECKS.items():
            batch.create_check_constraint(op.f(f"ck_execution_logs_{name}"), condition)
    with op.batch_alter_table("execution_log_dead_letters") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
        batch.create_index("ix_execution_log_dead_letters_trace_id", ["trace_id"])


def downgrade():
    with op.batch_alter_table("execution_log_dead_letters") as batch:
        batch.drop_index("ix_execution_log_dead_letters_trace_id")
        batch.drop_column("attempt")
        batch.drop_column("trace_id")
    with op.batch_alter_table("execution_logs") as batch:
        for name in CHECKS:
            batch.drop_constraint(op.f(f"ck_execution_logs_{name}"), type_="check")
        batch.drop_column("attempt")
