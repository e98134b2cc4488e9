"""IdP tables. The internal person id never leaves this database: relying parties only ever see
pairwise subjects derived from it.

Importing this module registers every IdP table on `Base.metadata` (the card and passkey tables
live in their packages on the same base, idp.orm), which is what the migrations compare with."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

# Imported for their side effect: the card and passkey tables join Base.metadata.
import idp.card.models
import idp.passkey.models  # noqa: F401
from idp.orm import Base, utcnow

__all__ = ["Base", "utcnow"]  # re-exported: migrations and tests read Base.metadata from here


class Person(Base):
    """A verified natural person, known only by a random internal id (no card data here)."""

    __tablename__ = "idp_person"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Client(Base):
    """A registered OAuth client (relying party, PHR server, connector or app)."""

    __tablename__ = "idp_client"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_name: Mapped[str] = mapped_column(String(200))
    # `static` (from configuration or demo data) or `dynamic` (RFC 7591 registration).
    registration: Mapped[str] = mapped_column(String(16), default="static")
    # The sector its pairwise subjects are computed for (a host name or a named sector).
    sector: Mapped[str] = mapped_column(String(255))
    client_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # scrypt hash of the client secret (idp.clients.hash_secret); a bare SHA-256 hex digest in
    # rows from before migration idp_0010, replaced at the next successful authentication.
    secret_hash: Mapped[str | None] = mapped_column(String(160))
    # RFC 7592: hash of the registration access token of a dynamically registered client.
    registration_token_hash: Mapped[str | None] = mapped_column(String(64))
    # The sector cannot change once a person has signed in (their `sub` depends on it).
    sector_locked: Mapped[bool] = mapped_column(Boolean, default=False)


class SigningKey(Base):
    """A token-signing key. `next` keys are published but do not sign yet, `current` signs,
    `retired` stays published until `retire_after` (every token it signed has expired)."""

    __tablename__ = "idp_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(8))  # next | current | retired
    public_jwk: Mapped[dict] = mapped_column(JSON)
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # AES-GCM under PHR_IDP_DATA_KEY
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retire_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Sector(Base):
    """A pairwise sector and the pairwise key version its subjects are computed with, fixed when
    the sector is first seen so that adding a newer key never changes anyone's `sub`."""

    __tablename__ = "idp_sector"

    sector: Mapped[str] = mapped_column(String(255), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginSession(Base):
    """A browser's sign-in at the IdP (single sign-on), known to the browser by a random cookie
    whose hash is the key here."""

    __tablename__ = "idp_login_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(String(43), unique=True)  # the `sid` claim for logout
    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id", ondelete="CASCADE"))
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthRequest(Base):
    """A validated authorization request waiting for sign-in or consent, or pushed (RFC 9126)."""

    __tablename__ = "idp_auth_request"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict] = mapped_column(JSON)
    pushed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Grant(Base):
    """A person's consent that a client may use some scopes; mirrored to the consent service,
    whose id it carries, so the PHR server can check it per request."""

    __tablename__ = "idp_grant"
    __table_args__ = (Index("ix_idp_grant_person_client", "person_id", "client_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text)
    # SMART launch context: the PHR server's Patient id the person chose for `patient/` scopes.
    patient: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthorizationCode(Base):
    """A one-time code; replaying it revokes the token family it produced."""

    __tablename__ = "idp_authorization_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    grant_id: Mapped[str | None] = mapped_column(String(64))
    sid: Mapped[str | None] = mapped_column(String(43))
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list] = mapped_column(JSON)
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    family_id: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(Base):
    """One link of a rotating refresh-token family. Using a link twice revokes the family."""

    __tablename__ = "idp_refresh_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    grant_id: Mapped[str | None] = mapped_column(String(64))
    sid: Mapped[str | None] = mapped_column(String(43))
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list] = mapped_column(JSON)
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IssuedAccessToken(Base):
    """Server-side record of a JWT access token, for revocation, introspection and userinfo."""

    __tablename__ = "idp_access_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str | None] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("idp_person.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DpopJti(Base):
    """DPoP proof ids seen at the token endpoint within their validity window (RFC 9449 11.1),
    and private_key_jwt client-assertion ids (RFC 7523 3), so neither can be replayed on any
    worker."""

    __tablename__ = "idp_dpop_jti"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class InitialAccessToken(Base):
    """Gate of dynamic client registration (RFC 7591 3): made by an operator with
    `phr idp registration-token`, stored hashed, limited in uses and time."""

    __tablename__ = "idp_initial_access_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    uses_left: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HousekeepingRun(Base):
    """When a periodic job (the purge) is next due, for every replica and worker at once: the
    one whose compare-and-set moves `next_run_at` runs it (idp.housekeeping)."""

    __tablename__ = "idp_housekeeping"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Attempt(Base):
    """Failed attempts per key (a client at the token endpoint, a person at sign-in) in the
    current window, shared by every worker."""

    __tablename__ = "idp_attempt"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(Integer, default=0)
