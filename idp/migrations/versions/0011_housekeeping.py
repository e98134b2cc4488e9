"""When the purge is next due, shared by every replica and worker (idp.housekeeping): with
services run as replicas, each worker's own hourly timer purged once per worker and replica.

Revision ID: idp_0011
Revises: idp_0010
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0011"
down_revision = "idp_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_housekeeping",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_idp_housekeeping")),
    )


def downgrade() -> None:
    op.drop_table("idp_housekeeping")
