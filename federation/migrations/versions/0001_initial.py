"""Federation authority initial schema: subordinates and issued trust marks.

Revision ID: federation_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "federation_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_subordinate",
        sa.Column("entity_id", sa.String(255), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=False),
        sa.Column("entity_types", sa.JSON(), nullable=False),
        sa.Column("intermediate", sa.Boolean(), nullable=False),
        sa.Column("metadata_policy", sa.JSON(), nullable=True),
        sa.Column("constraints", sa.JSON(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("entity_id", name="pk_federation_subordinate"),
    )
    op.create_table(
        "federation_trust_mark",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("trust_mark_type", sa.String(255), nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("jti", name="pk_federation_trust_mark"),
    )
    op.create_index("ix_federation_trust_mark_sub", "federation_trust_mark", ["sub"])


def downgrade() -> None:
    op.drop_index("ix_federation_trust_mark_sub", table_name="federation_trust_mark")
    op.drop_table("federation_trust_mark")
    op.drop_table("federation_subordinate")
