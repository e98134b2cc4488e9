"""Initial access tokens for dynamic client registration.

Revision ID: idp_0005
Revises: idp_0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0005"
down_revision = "idp_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_initial_access_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("uses_left", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_idp_initial_access_token")),
    )


def downgrade() -> None:
    op.drop_table("idp_initial_access_token")
