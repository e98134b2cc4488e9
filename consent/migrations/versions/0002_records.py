"""Consent records with versions, link requests, patient links, guardianships, change log.

Revision ID: consent_0002
Revises: consent_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0002"
down_revision = "consent_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_record",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("patient_municipality", sa.String(6), nullable=True),
        sa.Column("patient_code", sa.String(128), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consent_record"),
    )
    op.create_index("ix_consent_record_subject_kind", "consent_record", ["subject", "kind"])
    op.create_index(
        "ix_consent_record_actor_kind_status", "consent_record", ["actor", "kind", "status"]
    )
    op.create_table(
        "consent_version",
        sa.Column("consent_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("period_start", TZ, nullable=False),
        sa.Column("period_end", TZ, nullable=True),
        sa.Column("collection_method", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("recorded_by", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consent_record.id"],
            name="fk_consent_version_consent_id_consent_record",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("consent_id", "version", name="pk_consent_version"),
    )
    op.create_table(
        "consent_link_request",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("municipality", sa.String(6), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("consent_id", sa.String(36), nullable=False),
        sa.Column("include_children", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("answered_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["municipality"],
            ["consent_municipality.code"],
            name="fk_consent_link_request_municipality_consent_municipality",
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consent_record.id"],
            name="fk_consent_link_request_consent_id_consent_record",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consent_link_request"),
    )
    op.create_index(
        "ix_consent_link_request_municipality", "consent_link_request", ["municipality"]
    )
    op.create_index("ix_consent_link_request_subject", "consent_link_request", ["subject"])
    op.create_table(
        "consent_patient_link",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("municipality", sa.String(6), nullable=False),
        sa.Column("code", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["municipality"],
            ["consent_municipality.code"],
            name="fk_consent_patient_link_municipality_consent_municipality",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consent_patient_link"),
        sa.UniqueConstraint("subject", "municipality", name="uq_consent_patient_link_subject_city"),
    )
    op.create_index("ix_consent_patient_link_subject", "consent_patient_link", ["subject"])
    op.create_index(
        "ix_consent_patient_link_city_code", "consent_patient_link", ["municipality", "code"]
    )
    op.create_table(
        "consent_guardianship",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guardian", sa.String(255), nullable=False),
        sa.Column("municipality", sa.String(6), nullable=False),
        sa.Column("child_code", sa.String(128), nullable=False),
        sa.Column("relationship", sa.String(16), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["municipality"],
            ["consent_municipality.code"],
            name="fk_consent_guardianship_municipality_consent_municipality",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consent_guardianship"),
        sa.UniqueConstraint(
            "guardian", "municipality", "child_code", name="uq_consent_guardianship_link"
        ),
    )
    op.create_index("ix_consent_guardianship_guardian", "consent_guardianship", ["guardian"])
    op.create_index(
        "ix_consent_guardianship_city_child",
        "consent_guardianship",
        ["municipality", "child_code"],
    )
    op.create_table(
        "consent_change",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_consent_change"),
    )
    op.create_index("ix_consent_change_changed_at", "consent_change", ["changed_at"])


def downgrade() -> None:
    op.drop_table("consent_change")
    op.drop_table("consent_guardianship")
    op.drop_table("consent_patient_link")
    op.drop_table("consent_link_request")
    op.drop_table("consent_version")
    op.drop_table("consent_record")
