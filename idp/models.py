"""IdP tables. The internal person id never leaves this database: relying parties only ever see
pairwise subjects derived from it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from phr_core.db import ServiceBase, new_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()


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
