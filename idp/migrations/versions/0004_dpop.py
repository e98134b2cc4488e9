"""DPoP proof replay protection.

Revision ID: idp_0004
Revises: idp_0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0004"
down_revision = "idp_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_dpop_jti",
        sa.Column("jti_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti_hash", name=op.f("pk_idp_dpop_jti")),
    )
    with op.batch_alter_table("idp_dpop_jti", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idp_dpop_jti_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_dpop_jti", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_dpop_jti_expires_at"))
    op.drop_table("idp_dpop_jti")
