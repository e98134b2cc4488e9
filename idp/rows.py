"""Reading and writing one row without the ORM's unit of work: a plain SELECT by primary key
(the row's columns as attributes) and a plain INSERT. On the sign-in path the same few rows
(the parked request, the browser's sign-in, the code, the tokens) are written once and read
once per request, never changed through an object; `Session.get` costs about three times as
much CPU as its statement, and an ORM insert's flush half again as much as the INSERT."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Row, Select, Table, bindparam, insert, select
from sqlalchemy.orm import Session

from idp.orm import Base

_BY_KEY: dict[type[Base], Select[Any]] = {}  # one statement per model: compiled once, cached
_INSERT: dict[type[Base], Insert] = {}


def table_of(model: type[Base]) -> Table:
    """The model's table, for statements built once at import (cheaper than ORM DML)."""
    table = model.__table__
    assert isinstance(table, Table)  # noqa: S101 - narrowing: declarative models map tables
    return table


def _flush_pending(s: Session) -> None:
    """Write the session's pending ORM changes first, in the order `Session.get` or a flush
    would have (a row inserted here may refer to one added through the ORM)."""
    if s.new or s.dirty or s.deleted:
        s.flush()


def row_by_key(s: Session, model: type[Base], key: str) -> Row[Any] | None:
    """The row of `model` whose (single-column) primary key is `key`, as it is in the database
    for this transaction (pending ORM changes are flushed first, as `Session.get` would)."""
    stmt = _BY_KEY.get(model)
    if stmt is None:
        table = table_of(model)
        (pk,) = table.primary_key.columns
        stmt = _BY_KEY.setdefault(model, select(table).where(pk == bindparam("key")))
    _flush_pending(s)
    return s.execute(stmt, {"key": key}).first()


def insert_row(s: Session, model: type[Base], **values: Any) -> None:
    """INSERT one row of `model` now (column defaults apply as for an ORM insert)."""
    stmt = _INSERT.get(model)
    if stmt is None:
        stmt = _INSERT.setdefault(model, insert(table_of(model)))
    _flush_pending(s)
    s.execute(stmt, values)
