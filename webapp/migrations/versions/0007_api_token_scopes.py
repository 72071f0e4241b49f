"""api_tokens.scopes: what each bearer token may do

Revision ID: 0007_api_token_scopes
Revises: 0006_log_attempt_and_checks
Create Date: 2026-12-03

Space-separated scopes (read, start, ingest, admin; webapp.api.scopes).
Tokens made before scopes existed keep every scope, as they had.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_api_token_scopes"
down_revision = "0006_log_attempt_and_checks"
branch_labels = None
depends_on = None

ALL_SCOPES = "read start ingest admin"


def upgrade():
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scopes", sa.String(length=100), nullable=False, server_default=ALL_SCOPES))


def downgrade():
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scopes")
