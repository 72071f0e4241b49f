"""executions.heartbeat_at: the last sign of life of the process running an execution

Revision ID: 0005_execution_heartbeat
Revises: 0004_api_tokens
Create Date: 2026-12-03

The worker that runs an execution stamps it every WORKFLOW_HEARTBEAT_SECONDS;
an execution still ``running`` whose stamp is older than
WORKFLOW_STALE_SECONDS lost its worker and is failed (``worker_lost``,
resumable) by webapp.workflow.recovery.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_execution_heartbeat"
down_revision = "0004_api_tokens"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("heartbeat_at")
