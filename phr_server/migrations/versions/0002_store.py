"""PHR server store: versions, envelope data keys, search index tables and compartments.

Revision ID: fhir_0002
Revises: fhir_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "fhir_0002"
down_revision = "fhir_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fhir_resource") as b:
        b.add_column(sa.Column("key_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("municipality", sa.String(16), nullable=True))
        b.add_column(sa.Column("content_mac", sa.String(64), nullable=True))
        b.add_column(sa.Column("updated_us", sa.BigInteger(), nullable=False, server_default="0"))
        b.add_column(sa.Column("sort_us", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("fhir_resource") as b:
        b.alter_column("updated_us", server_default=None)
        b.alter_column("sort_us", server_default=None)
    op.create_index(
        "ix_fhir_resource_type_updated", "fhir_resource", ["resource_type", "updated_us", "id"]
    )
    op.create_index(
        "ix_fhir_resource_type_sort", "fhir_resource", ["resource_type", "sort_us", "id"]
    )
    op.create_table(
        "fhir_resource_version",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "id", "version_id", name="pk_fhir_resource_version"
        ),
    )
    # Rows written before this revision become their own first version.
    op.execute(
        "INSERT INTO fhir_resource_version (resource_type, id, version_id, last_updated, key_id, body) "
        "SELECT resource_type, id, version_id, last_updated, key_id, body FROM fhir_resource"
    )
    op.create_table(
        "fhir_data_key",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("master_kid", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fhir_data_key"),
    )
    op.create_index("ix_fhir_data_key_scope", "fhir_data_key", ["scope"])
    op.create_table(
        "fhir_token_index",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(32), nullable=False),
        sa.Column("system", sa.String(255), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "resource_id", "param", "system", "code", name="pk_fhir_token_index"
        ),
    )
    op.create_index(
        "ix_fhir_token_index_lookup",
        "fhir_token_index",
        ["resource_type", "param", "code", "system"],
    )
    op.create_table(
        "fhir_date_index",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(32), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_fhir_date_index"),
    )
    op.create_index(
        "ix_fhir_date_index_resource", "fhir_date_index", ["resource_type", "resource_id"]
    )
    op.create_index(
        "ix_fhir_date_index_lookup", "fhir_date_index", ["resource_type", "param", "start_us"]
    )
    op.create_table(
        "fhir_compartment",
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "patient_id", "resource_type", "resource_id", name="pk_fhir_compartment"
        ),
    )
    op.create_index(
        "ix_fhir_compartment_resource", "fhir_compartment", ["resource_type", "resource_id"]
    )


def downgrade() -> None:
    op.drop_table("fhir_compartment")
    op.drop_table("fhir_date_index")
    op.drop_table("fhir_token_index")
    op.drop_index("ix_fhir_data_key_scope", "fhir_data_key")
    op.drop_table("fhir_data_key")
    op.drop_table("fhir_resource_version")
    op.drop_index("ix_fhir_resource_type_sort", "fhir_resource")
    op.drop_index("ix_fhir_resource_type_updated", "fhir_resource")
    with op.batch_alter_table("fhir_resource") as b:
        b.drop_column("sort_us")
        b.drop_column("updated_us")
        b.drop_column("content_mac")
        b.drop_column("municipality")
        b.drop_column("key_id")
