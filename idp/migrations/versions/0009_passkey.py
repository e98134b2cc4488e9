"""IdP phone path: counter staff and their sessions, one-time enrollment codes, passkeys,
WebAuthn challenges, their audit, and the blind index staff find enrolled people by.

Revision ID: idp_0009
Revises: idp_0008
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0009"
down_revision = "idp_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_passkey_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=8), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("person_id", sa.String(length=36), nullable=True),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_passkey_audit")),
    )
    op.create_index(op.f("ix_idp_passkey_audit_at"), "idp_passkey_audit", ["at"], unique=False)
    op.create_table(
        "idp_passkey_challenge",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("enrollment_code_id", sa.String(length=32), nullable=True),
        sa.Column("auth_request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_passkey_challenge")),
    )
    op.create_table(
        "idp_staff",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_staff")),
        sa.UniqueConstraint("login", name=op.f("uq_idp_staff_login")),
    )
    op.create_table(
        "idp_enrollment_code",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code_key", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["idp_person.id"],
            name=op.f("fk_idp_enrollment_code_person_id_idp_person"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["idp_staff.id"], name=op.f("fk_idp_enrollment_code_staff_id_idp_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_enrollment_code")),
        sa.UniqueConstraint("code_key", name=op.f("uq_idp_enrollment_code_code_key")),
    )
    op.create_index(
        op.f("ix_idp_enrollment_code_person_id"), "idp_enrollment_code", ["person_id"], unique=False
    )
    op.create_table(
        "idp_passkey",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("device_type", sa.String(length=16), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("enrollment_code_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["idp_person.id"], name=op.f("fk_idp_passkey_person_id_idp_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_passkey")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_idp_passkey_credential_id")),
    )
    op.create_index(op.f("ix_idp_passkey_person_id"), "idp_passkey", ["person_id"], unique=False)
    op.create_table(
        "idp_person_lookup",
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("lookup_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["idp_person.id"], name=op.f("fk_idp_person_lookup_person_id_idp_person")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_idp_person_lookup")),
    )
    op.create_index(
        op.f("ix_idp_person_lookup_lookup_key"), "idp_person_lookup", ["lookup_key"], unique=False
    )
    op.create_table(
        "idp_staff_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["idp_staff.id"], name=op.f("fk_idp_staff_session_staff_id_idp_staff")
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_idp_staff_session")),
    )
    op.create_index(
        op.f("ix_idp_staff_session_staff_id"), "idp_staff_session", ["staff_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_idp_staff_session_staff_id"), table_name="idp_staff_session")
    op.drop_table("idp_staff_session")
    op.drop_index(op.f("ix_idp_person_lookup_lookup_key"), table_name="idp_person_lookup")
    op.drop_table("idp_person_lookup")
    op.drop_index(op.f("ix_idp_passkey_person_id"), table_name="idp_passkey")
    op.drop_table("idp_passkey")
    op.drop_index(op.f("ix_idp_enrollment_code_person_id"), table_name="idp_enrollment_code")
    op.drop_table("idp_enrollment_code")
    op.drop_table("idp_staff")
    op.drop_table("idp_passkey_challenge")
    op.drop_index(op.f("ix_idp_passkey_audit_at"), table_name="idp_passkey_audit")
    op.drop_table("idp_passkey_audit")
