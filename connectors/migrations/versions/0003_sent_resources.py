"""Connector: hashes of acknowledged resources, so an unchanged re-run sends nothing.

Revision ID: connector_0003
Revises: connector_0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "connector_0003"
down_revision = "connector_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_sent_resource",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("municipality_code", sa.String(6), nullable=False),
        sa.Column("identity", sa.String(36), nullable=False),
        sa.Column("patient_code", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_sent_resource"),
        sa.UniqueConstraint(
            "municipality_code", "identity", name="uq_connector_sent_resource_municipality_code"
        ),
    )
    op.create_index(
        "ix_connector_sent_resource_patient_code", "connector_sent_resource", ["patient_code"]
    )


def downgrade() -> None:
    op.drop_index("ix_connector_sent_resource_patient_code", "connector_sent_resource")
    op.drop_table("connector_sent_resource")
