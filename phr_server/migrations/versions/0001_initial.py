"""PHR server initial schema: encrypted resource store.

Revision ID: fhir_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "fhir_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fhir_resource",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "id", name="pk_fhir_resource"),
    )


def downgrade() -> None:
    op.drop_table("fhir_resource")
