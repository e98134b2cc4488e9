"""Arrivals (a source's last update) and the notices inbox.

Revision ID: consent_0004
Revises: consent_0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0004"
down_revision = "consent_0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_arrival",
        sa.Column("municipality", sa.String(6), nullable=False),
        sa.Column("code", sa.String(128), nullable=False),
        sa.Column("last_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("municipality", "code", name="pk_consent_arrival"),
    )
    op.create_table(
        "consent_notice",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("municipality", sa.String(6), nullable=False),
        sa.Column("code", sa.String(128), nullable=False),
        sa.Column("relationship", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("read_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consent_notice"),
        sa.UniqueConstraint(
            "subject", "municipality", "code", "key", name="uq_consent_notice_event"
        ),
    )
    op.create_index(
        "ix_consent_notice_subject_created", "consent_notice", ["subject", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("consent_notice")
    op.drop_table("consent_arrival")
