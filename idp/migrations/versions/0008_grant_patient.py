"""A grant remembers the SMART launch patient the person chose for the app.

Revision ID: idp_0008
Revises: idp_0007
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0008"
down_revision = "idp_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idp_grant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idp_grant", schema=None) as batch_op:
        batch_op.drop_column("patient")
