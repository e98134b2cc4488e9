"""Connector: residents who keep their pseudonymous code across a pseudonym-key rotation.

Revision ID: connector_0005
Revises: connector_0004
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "connector_0005"
down_revision = "connector_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_kept_pseudonym",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("municipality_code", sa.String(6), nullable=False),
        sa.Column("lookup_key", sa.String(16), nullable=False),
        sa.Column("lookup", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_kept_pseudonym"),
        sa.UniqueConstraint(
            "municipality_code",
            "lookup_key",
            "lookup",
            name="uq_connector_kept_pseudonym_municipality_code",
        ),
    )


def downgrade() -> None:
    op.drop_table("connector_kept_pseudonym")
