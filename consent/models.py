"""Consent-service tables.

A consent is a head row (`ConsentRecord`: who, to whom, which kind; never changes except for the
pointer to its newest version and that version's status, kept for queries) and an append-only
list of versions (`ConsentVersion`): every change (granted, updated, revoked) adds a version and
nothing is overwritten, so the history, the receipts and the FHIR export can be rebuilt exactly.

People appear only by their PHR-sector pairwise `sub` and, once their city answered a link
request, by that city's pseudonymous code. Card-verified attributes live only in pending link
requests, encrypted, and are deleted when the city answers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from phr_core.db import ServiceBase, new_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()


class Municipality(Base):
    """A participating municipality: a data provider citizens can consent to."""

    __tablename__ = "consent_municipality"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)  # 全国地方公共団体コード
    name_ja: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsentRecord(Base):
    """One consent (FHIR Consent): a person (or a guardian for a child) lets a municipality
    provide data (`kind` = provider, actor = municipality code) or an app read data (`kind` =
    recipient, actor = OAuth client_id). The content is in its versions."""

    __tablename__ = "consent_record"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID; an app grant's id
    kind: Mapped[str] = mapped_column(String(16))  # provider | recipient
    subject: Mapped[str] = mapped_column(String(255))  # who consents (PHR-sector sub)
    actor: Mapped[str] = mapped_column(String(255))  # municipality code or client_id
    # Whose data: NULL = the subject themself; else a child's code in `patient_municipality`.
    patient_municipality: Mapped[str | None] = mapped_column(String(6), nullable=True)
    patient_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))  # of the current version: active | inactive

    __table_args__ = (
        Index("ix_consent_record_subject_kind", "subject", "kind"),
        Index("ix_consent_record_actor_kind_status", "actor", "kind", "status"),
    )


class ConsentVersion(Base):
    """One immutable version of a consent: everything it said at that moment, and why it
    changed. Field names follow FHIR Consent (provision.actor / action / class / purpose /
    period) and ISO/IEC TS 27560 (event type, collection method)."""

    __tablename__ = "consent_version"

    consent_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("consent_record.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # FHIR Consent.status: active | inactive
    event: Mapped[str] = mapped_column(String(32))  # consent_given | updated | consent_withdrawn
    actor_name: Mapped[str] = mapped_column(String(200))
    categories: Mapped[list[str]] = mapped_column(JSON)  # mch, vaccination, checkup, claims
    scopes: Mapped[list[str]] = mapped_column(JSON)  # OAuth scopes (apps); [] for cities
    actions: Mapped[list[str]] = mapped_column(JSON)  # FHIR consentaction: collect, access, …
    purpose: Mapped[str] = mapped_column(Text)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    collection_method: Mapped[str] = mapped_column(String(64))  # where it was given
    language: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(255))  # the client that made the change
    # What the person was shown about an app (phr_core.grant_description.GrantFacts.details).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class LinkRequest(Base):
    """A person's consent to a city waiting for the city to find them in its register. The
    card-verified attributes are stored encrypted and deleted when the city answers."""

    __tablename__ = "consent_link_request"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    municipality: Mapped[str] = mapped_column(
        String(6), ForeignKey("consent_municipality.code"), index=True
    )
    subject: Mapped[str] = mapped_column(String(255), index=True)
    consent_id: Mapped[str] = mapped_column(String(36), ForeignKey("consent_record.id"))
    include_children: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | matched | no_match | withdrawn
    attributes: Mapped[str | None] = mapped_column(Text, nullable=True)  # AES-GCM, base64
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PatientLink(Base):
    """The subject is the person with `code` in `municipality`'s register (relationship self)."""

    __tablename__ = "consent_patient_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    municipality: Mapped[str] = mapped_column(String(6), ForeignKey("consent_municipality.code"))
    code: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("subject", "municipality", name="uq_consent_patient_link_subject_city"),
        Index("ix_consent_patient_link_city_code", "municipality", "code"),
    )


class Guardianship(Base):
    """The subject is a guardian (mother, father or other) of the child with `child_code` in
    `municipality`, as the city's records (the maternal and child health handbook) say, until
    `ends_on` (the child's birthday at GUARDIANSHIP_END_AGE; the birth date is not kept)."""

    __tablename__ = "consent_guardianship"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guardian: Mapped[str] = mapped_column(String(255), index=True)
    municipality: Mapped[str] = mapped_column(String(6), ForeignKey("consent_municipality.code"))
    child_code: Mapped[str] = mapped_column(String(128))
    relationship: Mapped[str] = mapped_column(String(16))  # mother | father | guardian
    ends_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "guardian", "municipality", "child_code", name="uq_consent_guardianship_link"
        ),
        Index("ix_consent_guardianship_city_child", "municipality", "child_code"),
    )


class ChangeLog(Base):
    """Which cache keys a committed change touched, so every process (and every host) evicts
    them: written in the same transaction as the change, read by `consent.cache`."""

    __tablename__ = "consent_change"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(300))
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class PortalTokens(Base):
    """The portal's access and refresh tokens for one signed-in browser, kept server side so the
    session cookie holds only a random handle. Keyed by the handle's SHA-256; the tokens are
    AES-GCM encrypted (portal.token_store) under a key that is not in the database."""

    __tablename__ = "consent_portal_tokens"

    handle_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    sealed: Mapped[str] = mapped_column(Text)  # {"access_token", "refresh_token", "expires_at"}
    access_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    refreshing_since: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class Arrival(Base):
    """When records last arrived at the PHR server for a (municipality, code), as the PHR
    server reports after each write that changed something: the "last update" of a source."""

    __tablename__ = "consent_arrival"

    municipality: Mapped[str] = mapped_column(String(6), primary_key=True)
    code: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Notice(Base):
    """One entry of a person's inbox ("お知らせ"): new records arrived for them or a child, or
    a vaccination falls due. `key` keeps one notice per event (a day's arrivals, one dose)."""

    __tablename__ = "consent_notice"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # records | vaccination
    municipality: Mapped[str] = mapped_column(String(6))
    code: Mapped[str] = mapped_column(String(128))  # whose records (the subject's or a child's)
    relationship: Mapped[str] = mapped_column(String(16))  # self | child
    key: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        UniqueConstraint("subject", "municipality", "code", "key", name="uq_consent_notice_event"),
        Index("ix_consent_notice_subject_created", "subject", "created_at"),
    )
