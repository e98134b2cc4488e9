"""PHR server tables. Resource bodies are stored encrypted; nothing here names a person."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from phr_core.db import ServiceBase, new_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()


class StoredResource(Base):
    """The current version of one FHIR resource, its body sealed with AES-256-GCM."""

    __tablename__ = "fhir_resource"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, default=1)
    last_updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    body: Mapped[bytes] = mapped_column(LargeBinary)
