"""PHR server: DPoP proof ids, so a proof is accepted once (RFC 9449 11.1).

Revision ID: fhir_0004
Revises: fhir_0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "fhir_0004"
down_revision = "fhir_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fhir_dpop_jti",
        sa.Column("jti_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti_hash", name="pk_fhir_dpop_jti"),
    )
    op.create_index("ix_fhir_dpop_jti_expires_at", "fhir_dpop_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_fhir_dpop_jti_expires_at", table_name="fhir_dpop_jti")
    op.drop_table("fhir_dpop_jti")
