"""Index the grants the authorization endpoint looks up per person and client.

Revision ID: idp_0007
Revises: idp_0006
Create Date: 2026-11-26
"""

from alembic import op

revision = "idp_0007"
down_revision = "idp_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idp_grant", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idp_grant_person_client", ["person_id", "client_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_grant", schema=None) as batch_op:
        batch_op.drop_index("ix_idp_grant_person_client")
