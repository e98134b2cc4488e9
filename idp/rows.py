"""Reading one row by primary key without the ORM's identity map: a plain SELECT of the table,
the row's columns as attributes. On the sign-in path the same few rows (the parked request,
the browser's sign-in, the code) are read once per request and never changed through the
object, and `Session.get` costs about three times as much CPU as the statement itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, Table, bindparam, select
from sqlalchemy.orm import Session

from idp.orm import Base

_BY_KEY: dict[type[Base], Select[Any]] = {}  # one statement per model: compiled once, cached


def row_by_key(s: Session, model: type[Base], key: str) -> Row[Any] | None:
    """The row of `model` whose (single-column) primary key is `key`, as it is in the database
    for this transaction (pending ORM changes are flushed first, as `Session.get` would)."""
    stmt = _BY_KEY.get(model)
    if stmt is None:
        table = model.__table__
        assert isinstance(table, Table)  # noqa: S101 - narrowing: declarative models map tables
        (pk,) = table.primary_key.columns
        stmt = _BY_KEY.setdefault(model, select(table).where(pk == bindparam("key")))
    if s.new or s.dirty or s.deleted:
        s.flush()
    return s.execute(stmt, {"key": key}).first()
