"""IdP OAuth/OIDC state: signing keys, sectors, sessions, requests, grants, codes and tokens.

Revision ID: idp_0003
Revises: idp_0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "idp_0003"
down_revision = "idp_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_auth_request",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_auth_request")),
    )
    op.create_table(
        "idp_sector",
        sa.Column("sector", sa.String(length=255), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sector", name=op.f("pk_idp_sector")),
    )
    op.create_table(
        "idp_signing_key",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retire_after", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_idp_signing_key")),
    )
    op.create_table(
        "idp_access_token",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["idp_person.id"],
            name=op.f("fk_idp_access_token_person_id_idp_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_idp_access_token")),
    )
    with op.batch_alter_table("idp_access_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idp_access_token_family_id"), ["family_id"], unique=False
        )

    op.create_table(
        "idp_authorization_code",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=True),
        sa.Column("sid", sa.String(length=43), nullable=True),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acr", sa.String(length=64), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("dpop_jkt", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("family_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["idp_person.id"],
            name=op.f("fk_idp_authorization_code_person_id_idp_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_idp_authorization_code")),
    )
    op.create_table(
        "idp_grant",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["idp_person.id"],
            name=op.f("fk_idp_grant_person_id_idp_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_grant")),
    )
    op.create_table(
        "idp_login_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("sid", sa.String(length=43), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acr", sa.String(length=64), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["idp_person.id"],
            name=op.f("fk_idp_login_session_person_id_idp_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_idp_login_session")),
        sa.UniqueConstraint("sid", name=op.f("uq_idp_login_session_sid")),
    )
    op.create_table(
        "idp_refresh_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=True),
        sa.Column("sid", sa.String(length=43), nullable=True),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acr", sa.String(length=64), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("dpop_jkt", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["idp_person.id"],
            name=op.f("fk_idp_refresh_token_person_id_idp_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_idp_refresh_token")),
    )
    with op.batch_alter_table("idp_refresh_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idp_refresh_token_family_id"), ["family_id"], unique=False
        )

    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("registration_token_hash", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("sector_locked", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.drop_column("sector_locked")
        batch_op.drop_column("registration_token_hash")
        batch_op.drop_column("secret_hash")

    with op.batch_alter_table("idp_refresh_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_refresh_token_family_id"))

    op.drop_table("idp_refresh_token")
    op.drop_table("idp_login_session")
    op.drop_table("idp_grant")
    op.drop_table("idp_authorization_code")
    with op.batch_alter_table("idp_access_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_access_token_family_id"))

    op.drop_table("idp_access_token")
    op.drop_table("idp_signing_key")
    op.drop_table("idp_sector")
    op.drop_table("idp_auth_request")
