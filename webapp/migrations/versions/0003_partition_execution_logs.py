"""execution_logs: primary key (id, created_at); on PostgreSQL, daily range partitions

Revision ID: 0003_partition_execution_logs
Revises: 0002_workflows
Create Date: 2026-11-28

On PostgreSQL the plain table becomes a table partitioned by range of
created_at: the old table is renamed, the partitioned parent is created with
the same columns and indexes, a DEFAULT partition and one partition per UTC
day of the existing rows and of today and the next 7 days are created, the
rows are copied and the old table is dropped. A partition key must be part of
every unique constraint, hence the primary key (id, created_at); SQLite gets
the same key (and stays a plain table). After this, webapp.execlog.retention
creates and drops partitions.

The copy runs in the migration's transaction: on a large table, run it in a
quiet hour (inserts wait in the logs queue meanwhile).
"""

from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_partition_execution_logs"
down_revision = "0002_workflows"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TABLE = "execution_logs"
OLD = "execution_logs_unpartitioned"
COLUMNS = (
    "id, trace_id, level, category, message, step, agent_name, roadmap_id, "
    "concept_id, details, duration_ms, created_at"
)
DAYS_AHEAD = 7
INDEXES = {
    "ix_execution_logs_trace_id_created_at_id": ["trace_id", "created_at", "id"],
    "ix_execution_logs_created_at": ["created_at"],
}


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        _set_primary_key(["id", "created_at"])
        return
    _set_aside_old_table()
    _create_log_table(postgresql_partition_by="RANGE (created_at)")
    op.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    for day in sorted(_days_with_rows() | _days_ahead()):
        low, high = _midnight(day), _midnight(day + timedelta(days=1))
        op.execute(
            f"CREATE TABLE {TABLE}_p{day:%Y%m%d} PARTITION OF {TABLE} "
            f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
        )
    op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {OLD}")
    op.drop_table(OLD)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        _set_primary_key(["id"])
        return
    _set_aside_old_table()
    _create_log_table()
    op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {OLD} ON CONFLICT DO NOTHING")
    op.drop_table(OLD)  # a partitioned table goes with its partitions


def _set_primary_key(columns):
    with op.batch_alter_table(TABLE, recreate="always") as batch:
        batch.drop_constraint("pk_execution_logs", type_="primary")
        batch.create_primary_key("pk_execution_logs", columns)


def _set_aside_old_table():
    """Rename the table and free the names of its constraint and indexes."""
    op.rename_table(TABLE, OLD)
    op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_execution_logs TO pk_{OLD}")
    for name in INDEXES:
        op.drop_index(name, table_name=OLD)


def _create_log_table(**options):
    primary_key = ["id", "created_at"] if options else ["id"]
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trace_id", sa.String(length=255), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("step", sa.String(length=255), nullable=True),
        sa.Column("agent_name", sa.String(length=255), nullable=True),
        sa.Column("roadmap_id", sa.String(length=255), nullable=True),
        sa.Column("concept_id", sa.String(length=255), nullable=True),
        sa.Column("details", JSONType, nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*primary_key, name="pk_execution_logs"),
        **options,
    )
    for name, columns in INDEXES.items():
        op.create_index(name, TABLE, columns)


def _days_with_rows():
    rows = op.get_bind().execute(
        sa.text(f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM {OLD}")
    )
    return {row[0] for row in rows}


def _days_ahead():
    today = datetime.now(timezone.utc).date()
    return {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
