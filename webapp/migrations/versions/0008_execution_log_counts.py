"""execution_log_counts: what each run of an execution logged, as it counted it

Revision ID: 0008_execution_log_counts
Revises: 0007_api_token_scopes
Create Date: 2026-12-03

A run (an attempt of an execution) counts the records it logs and, once its
logger has flushed, stores that count with the records its process dropped
for good. The API compares it with the rows of execution_logs of that
attempt: the log's completeness verdict (webapp.api.completeness).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_execution_log_counts"
down_revision = "0007_api_token_scopes"
branch_labels = None
depends_on = None

COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "execution_log_counts",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("emitted", COUNT, nullable=False),
        sa.Column("dropped", COUNT, nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("emitted >= 0 AND dropped >= 0",
                           name=op.f("ck_execution_log_counts_counts_sane")),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE",
                                name=op.f("fk_execution_log_counts_execution_id_executions")),
        sa.PrimaryKeyConstraint("execution_id", "attempt", name=op.f("pk_execution_log_counts")),
    )


def downgrade():
    op.drop_table("execution_log_counts")
