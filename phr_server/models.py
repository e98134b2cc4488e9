"""PHR server tables. Resource bodies are stored encrypted; nothing here names a person.

The index tables hold only what search and the access policy need: codes, pseudonymous
identifiers, dates as microseconds since the epoch, and which Patient compartment a resource
belongs to. Search never decrypts a body."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column

from phr_core.db import ServiceBase, new_metadata
from phr_core.db import rowcount as rowcount  # re-exported: the server's modules import it here


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()


def table_of(model: type[Base]) -> Table:
    """The model's Table for Core statements, typed as the Table it is (SQLAlchemy declares
    `__table__` a FromClause, which `insert`, `update` and `delete` do not take)."""
    found = model.__table__
    if not isinstance(found, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return found


class StoredResource(Base):
    """The current version of one FHIR resource, its body sealed with AES-256-GCM under the
    data key `key_id` (None: the pre-envelope format 1, sealed with the master-derived key)."""

    __tablename__ = "fhir_resource"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, default=1)
    last_updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Whose data this is: the municipality code whose connector wrote it ("platform" for the
    # server's own AuditEvents). Connectors only see and change their own city's rows.
    municipality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # HMAC of the content without meta, keyed by the row's data key: lets a repeated load be
    # recognised as "unchanged" without decrypting anything.
    content_mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_us: Mapped[int] = mapped_column(BigInteger, default=0)
    sort_us: Mapped[int] = mapped_column(BigInteger, default=0)  # the resource's main date

    __table_args__ = (
        Index("ix_fhir_resource_type_updated", "resource_type", "updated_us", "id"),
        Index("ix_fhir_resource_type_sort", "resource_type", "sort_us", "id"),
    )


class ResourceVersion(Base):
    """Every version of every resource (the current one too), for vread and history."""

    __tablename__ = "fhir_resource_version"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class DataKey(Base):
    """A per-municipality data key, wrapped (AES-256-GCM) by the master key `master_kid`."""

    __tablename__ = "fhir_data_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16), index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    master_kid: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class TokenIndex(Base):
    """Token search values (code, category, status, identifier, vaccine-code, gender, …)."""

    __tablename__ = "fhir_token_index"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    param: Mapped[str] = mapped_column(String(32), primary_key=True)
    system: Mapped[str] = mapped_column(String(255), primary_key=True)
    code: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (
        Index("ix_fhir_token_index_lookup", "resource_type", "param", "code", "system"),
    )


class DateIndex(Base):
    """Date search values as [start, end) in microseconds since the epoch (UTC)."""

    __tablename__ = "fhir_date_index"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(32))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_fhir_date_index_resource", "resource_type", "resource_id"),
        Index("ix_fhir_date_index_lookup", "resource_type", "param", "start_us"),
    )


class Compartment(Base):
    """Which Patient compartment a resource belongs to: the one table the policy joins."""

    __tablename__ = "fhir_compartment"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_fhir_compartment_resource", "resource_type", "resource_id"),)


class IdentifierClaim(Base):
    """One identifier claimed by the conditional write that created its resource (claims.py):
    the unique key that makes two concurrent conditional creates end with one resource."""

    __tablename__ = "fhir_identifier_claim"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    municipality: Mapped[str] = mapped_column(String(16), primary_key=True)
    system: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64))


class DpopJti(Base):
    """DPoP proof ids seen by this server within their validity window (RFC 9449 11.1), kept in
    the database so that no gunicorn worker accepts a proof another one already took."""

    __tablename__ = "fhir_dpop_jti"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
