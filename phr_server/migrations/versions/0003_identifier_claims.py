"""PHR server: identifier claims, the unique key behind concurrent conditional creates.

Revision ID: fhir_0003
Revises: fhir_0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "fhir_0003"
down_revision = "fhir_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fhir_identifier_claim",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("municipality", sa.String(16), nullable=False),
        sa.Column("system", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "municipality", "system", "value", name="pk_fhir_identifier_claim"
        ),
    )


def downgrade() -> None:
    op.drop_table("fhir_identifier_claim")
