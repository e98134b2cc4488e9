"""Connector: when each person's consent was given, so a re-consent resends their records.

Revision ID: connector_0004
Revises: connector_0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "connector_0004"
down_revision = "connector_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_consent_epoch",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("municipality_code", sa.String(6), nullable=False),
        sa.Column("patient_code", sa.String(64), nullable=False),
        sa.Column("since", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_consent_epoch"),
        sa.UniqueConstraint(
            "municipality_code",
            "patient_code",
            name="uq_connector_consent_epoch_municipality_code",
        ),
    )


def downgrade() -> None:
    op.drop_table("connector_consent_epoch")
