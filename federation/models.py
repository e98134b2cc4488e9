"""The federation authority's tables: the entities it vouches for and the trust marks it
issued. A removed entity keeps its row (with `removed_at`) so the removal is on record."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from phr_core.db import ServiceBase, new_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()


class Subordinate(Base):
    """An entity directly below this authority, with the federation keys it registered."""

    __tablename__ = "federation_subordinate"

    entity_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    jwks: Mapped[dict] = mapped_column(JSON)
    entity_types: Mapped[list] = mapped_column(JSON, default=list)
    intermediate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Its own policy and constraints; null means the federation's defaults (authority.policies).
    metadata_policy: Mapped[dict | None] = mapped_column(JSON)
    constraints: Mapped[dict | None] = mapped_column(JSON)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IssuedTrustMark(Base):
    """A trust mark this authority issued; revoking it makes the status endpoint say so."""

    __tablename__ = "federation_trust_mark"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    trust_mark_type: Mapped[str] = mapped_column(String(255))
    sub: Mapped[str] = mapped_column(String(255), index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
