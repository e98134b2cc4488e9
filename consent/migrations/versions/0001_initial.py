"""Consent service initial schema: participating municipalities.

Revision ID: consent_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_municipality",
        sa.Column("code", sa.String(6), nullable=False),
        sa.Column("name_ja", sa.String(100), nullable=False),
        sa.Column("name_en", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_consent_municipality"),
    )


def downgrade() -> None:
    op.drop_table("consent_municipality")
