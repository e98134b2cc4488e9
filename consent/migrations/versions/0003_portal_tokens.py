"""The portal's server-side token store (access and refresh tokens for the PHR server).

Revision ID: consent_0003
Revises: consent_0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0003"
down_revision = "consent_0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_portal_tokens",
        sa.Column("handle_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("access_expires_at", TZ, nullable=False),
        sa.Column("refreshing_since", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_used_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("handle_hash", name="pk_consent_portal_tokens"),
    )
    op.create_index("ix_consent_portal_tokens_subject", "consent_portal_tokens", ["subject"])
    op.create_index(
        "ix_consent_portal_tokens_last_used_at", "consent_portal_tokens", ["last_used_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_consent_portal_tokens_last_used_at", "consent_portal_tokens")
    op.drop_index("ix_consent_portal_tokens_subject", "consent_portal_tokens")
    op.drop_table("consent_portal_tokens")
