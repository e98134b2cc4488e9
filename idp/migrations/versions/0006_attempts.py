"""Failed-attempt counters for rate limits.

Revision ID: idp_0006
Revises: idp_0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0006"
down_revision = "idp_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_attempt",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idp_attempt")),
    )


def downgrade() -> None:
    op.drop_table("idp_attempt")
