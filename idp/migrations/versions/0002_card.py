"""IdP card sign-in: card sessions, certificate bindings, encrypted attributes, audit.

Revision ID: idp_0002
Revises: idp_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0002"
down_revision = "idp_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_card_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("short_code", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=40), nullable=True),
        sa.Column("person_id", sa.String(length=36), nullable=True),
        sa.Column("enrolled", sa.Boolean(), nullable=False),
        sa.Column("revocation_method", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["idp_person.id"], name="fk_idp_card_session_person_id_idp_person"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_idp_card_session"),
        sa.UniqueConstraint("short_code", name="uq_idp_card_session_short_code"),
    )
    op.create_table(
        "idp_card_binding",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("cert_type", sa.String(length=8), nullable=False),
        sa.Column("cert_key", sa.String(length=64), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("binding_method", sa.String(length=24), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["idp_person.id"], name="fk_idp_card_binding_person_id_idp_person"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_idp_card_binding"),
        sa.UniqueConstraint("cert_key", name="uq_idp_card_binding_cert_key"),
    )
    op.create_index("ix_idp_card_binding_person_id", "idp_card_binding", ["person_id"])
    op.create_table(
        "idp_card_attributes",
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["idp_person.id"], name="fk_idp_card_attributes_person_id_idp_person"
        ),
        sa.PrimaryKeyConstraint("person_id", name="pk_idp_card_attributes"),
    )
    op.create_table(
        "idp_card_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("person_id", sa.String(length=36), nullable=True),
        sa.Column("revocation_method", sa.String(length=8), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_idp_card_audit"),
    )
    op.create_index("ix_idp_card_audit_at", "idp_card_audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_idp_card_audit_at", table_name="idp_card_audit")
    op.drop_table("idp_card_audit")
    op.drop_table("idp_card_attributes")
    op.drop_index("ix_idp_card_binding_person_id", table_name="idp_card_binding")
    op.drop_table("idp_card_binding")
    op.drop_table("idp_card_session")
