"""IdP initial schema: persons and clients.

Revision ID: idp_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_person",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idp_person"),
    )
    op.create_table(
        "idp_client",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("client_name", sa.String(200), nullable=False),
        sa.Column("registration", sa.String(16), nullable=False),
        sa.Column("sector", sa.String(255), nullable=False),
        sa.Column("client_metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_idp_client"),
    )


def downgrade() -> None:
    op.drop_table("idp_client")
    op.drop_table("idp_person")
