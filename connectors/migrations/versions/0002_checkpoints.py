"""Connector: rejected-row field name and per-file checkpoints for resumable runs.

Revision ID: connector_0002
Revises: connector_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "connector_0002"
down_revision = "connector_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connector_row_error") as batch:
        batch.add_column(sa.Column("field", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "connector_checkpoint",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("municipality_code", sa.String(6), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("counters", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_checkpoint"),
        sa.UniqueConstraint(
            "municipality_code",
            "source",
            "file_sha256",
            name="uq_connector_checkpoint_municipality_code",
        ),
    )


def downgrade() -> None:
    op.drop_table("connector_checkpoint")
    with op.batch_alter_table("connector_row_error") as batch:
        batch.drop_column("field")
