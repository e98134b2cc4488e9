"""Tables of card sign-in. No certificate serial, card number or readable personal data is
stored: certificates are known by a keyed hash, and the four basic attributes only encrypted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.orm import Base, utcnow


class CardSession(Base):
    """One challenge for one card signature: short-lived and single use."""

    __tablename__ = "idp_card_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    short_code: Mapped[str] = mapped_column(String(8), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))
    challenge: Mapped[str] = mapped_column(String(64))
    # pending → processing → verified → consumed, or → failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(String(40))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("idp_person.id"))
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    revocation_method: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CardBinding(Base):
    """A certificate bound to a person, known only by HMAC(key, SHA-256 of the certificate)."""

    __tablename__ = "idp_card_binding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id"), index=True)
    cert_type: Mapped[str] = mapped_column(String(8))  # auth | sign
    cert_key: Mapped[str] = mapped_column(String(64), unique=True)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | superseded
    binding_method: Mapped[str] = mapped_column(String(24))  # enrollment | renewal_link
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CardAttributes(Base):
    """The four basic attributes the signature certificate proved, AES-GCM encrypted, kept for
    the municipality linkage (never shown to relying parties from here)."""

    __tablename__ = "idp_card_attributes"

    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id"), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CardAudit(Base):
    """Every card sign-in attempt, success or failure; no personal data, no certificate data."""

    __tablename__ = "idp_card_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(24))  # sign_in | enrollment | renewal
    outcome: Mapped[str] = mapped_column(String(8))  # success | failure
    code: Mapped[str | None] = mapped_column(String(40))
    session_id: Mapped[str | None] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(36))  # internal id, successes only
    revocation_method: Mapped[str | None] = mapped_column(String(8))


class PersonLookup(Base):
    """A blind index of the card-verified name and birth date, so counter staff can find an
    enrolled person without decrypting everyone: HMAC (key from PHR_IDP_DATA_KEY) of the
    normalized name and the birth date. Several people may share one key."""

    __tablename__ = "idp_person_lookup"

    person_id: Mapped[str] = mapped_column(ForeignKey("idp_person.id"), primary_key=True)
    lookup_key: Mapped[str] = mapped_column(String(64), index=True)
