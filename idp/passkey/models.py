"""Tables of the phone path: counter staff, their sessions, one-time enrollment codes,
passkeys, WebAuthn challenges and the audit trail. No personal data: people are known by the
internal person id only, codes and session handles only by keyed or plain hashes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.orm import Base, utcnow


class Staff(Base):
    """A counter-staff account (made with `phr idp staff add`); the password as an scrypt hash."""

    __tablename__ = "idp_staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StaffSession(Base):
    """A staff sign-in: the random handle lives in the staff cookie, its SHA-256 here."""

    __tablename__ = "idp_staff_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("idp_staff.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EnrollmentCode(Base):
    """A one-time passkey enrollment code a staff member issued after checking the person in
    person. Only an HMAC of the code is kept; `id` is a public reference for the audit."""

    __tablename__ = "idp_enrollment_code"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_key: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("idp_staff.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Passkey(Base):
    """A person's WebAuthn credential (public key only)."""

    __tablename__ = "idp_passkey"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    device_type: Mapped[str] = mapped_column(String(16))  # single_device | multi_device
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    enrollment_code_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasskeyChallenge(Base):
    """One WebAuthn challenge: short-lived and single use, known by its SHA-256 (the browser
    sends the challenge back inside clientDataJSON)."""

    __tablename__ = "idp_passkey_challenge"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the challenge
    purpose: Mapped[str] = mapped_column(String(16))  # register | login
    enrollment_code_id: Mapped[str | None] = mapped_column(String(32))
    auth_request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasskeyAudit(Base):
    """Every staff action and every passkey enrollment or sign-in attempt: who (a staff id, or
    the person's internal id on success only), what, when, the outcome. No personal data."""

    __tablename__ = "idp_passkey_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(8))  # staff | person
    staff_id: Mapped[int | None] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(8))  # success | failure
    code: Mapped[str | None] = mapped_column(String(40))
    person_id: Mapped[str | None] = mapped_column(String(36))
    ref: Mapped[str | None] = mapped_column(String(64))  # enrollment code id or passkey id
