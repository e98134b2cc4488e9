"""Client secrets are stored with scrypt (`scrypt$…`, longer than a SHA-256 hex digest). Rows
written before keep their SHA-256 digest, which still verifies and is replaced with an scrypt
hash on the client's next successful authentication (idp.clients, idp.client_auth); no secret is
known here to re-hash them now.

Revision ID: idp_0010
Revises: idp_0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0010"
down_revision = "idp_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.alter_column(
            "secret_hash",
            existing_type=sa.String(length=64),
            type_=sa.String(length=160),
            existing_nullable=True,
        )


def downgrade() -> None:
    # An scrypt hash does not fit the old column and cannot be turned back into SHA-256:
    # those clients need their secret set again (static: restart; dynamic: re-register).
    op.execute("UPDATE idp_client SET secret_hash = NULL WHERE secret_hash LIKE 'scrypt$%'")
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.alter_column(
            "secret_hash",
            existing_type=sa.String(length=160),
            type_=sa.String(length=64),
            existing_nullable=True,
        )
