"""The declarative base every IdP table shares (core, card and passkey tables: one metadata, one
schema, one migration history), kept apart from the tables so the card and passkey tables can
build on it without importing the core tables' module."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, Result

from phr_core.db import ServiceBase, new_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (single-use claims compare it with 1).
    Session.execute is typed as returning a Result; for those statements it is a CursorResult,
    which carries the count."""
    if not isinstance(result, CursorResult):
        raise TypeError("rowcount needs the result of an UPDATE or DELETE")
    return int(result.rowcount)
