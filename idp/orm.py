"""The declarative base every IdP table shares (core, card and passkey tables: one metadata, one
schema, one migration history), kept apart from the tables so the card and passkey tables can
build on it without importing the core tables' module."""

from __future__ import annotations

from datetime import UTC, datetime

from phr_core.db import ServiceBase, new_metadata
from phr_core.db import rowcount as rowcount  # re-exported: the IdP's modules import it here


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()
