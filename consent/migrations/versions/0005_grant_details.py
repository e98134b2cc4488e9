"""A consent version keeps what the person was shown about the app (publisher, purpose in each
language, whose record, policy links): phr_core.grant_description, for the portal.

Revision ID: consent_0005
Revises: consent_0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0005"
down_revision = "consent_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_version", schema=None) as batch_op:
        batch_op.drop_column("details")
