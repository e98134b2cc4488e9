"""Inserting many rows in one go: PostgreSQL's COPY where the database is PostgreSQL (psycopg 3),
an executemany elsewhere (SQLite).

A bulk load writes thousands of rows per transaction Bundle (the resources, their versions and
their token, date and compartment index rows). psycopg's executemany sends one INSERT per row
(pipelined, but each row is bound and dumped separately on both sides); COPY streams them as
one statement. It runs on the session's own connection, so the rows are part of the request's
transaction like any other write."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# Below this many rows COPY's fixed cost (its own statement and protocol switch) is not worth it.
MIN_COPY_ROWS = 8


def insert_rows(s: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) into `table`; a unique violation raises
    SQLAlchemy's IntegrityError, as an INSERT would."""
    if not rows:
        return
    if s.get_bind().dialect.name != "postgresql" or len(rows) < MIN_COPY_ROWS:
        s.execute(insert(table), rows)
        return
    cols = list(rows[0])
    raw = s.connection().connection.driver_connection
    if raw is None:  # a checked-out connection always has one
        raise RuntimeError("the database connection is closed")
    sql = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row([row[c] for c in cols])
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(sql, None, exc) from None
