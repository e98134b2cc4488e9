"""Consent-service tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, String
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
