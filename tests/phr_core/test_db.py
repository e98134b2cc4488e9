"""The connection pool without pre-ping: a connection the server dropped fails one use, after
which the pool is discarded and the next use works (PostgreSQL; SQLite has no server)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from phr_core.db import Database


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_a_dropped_connection_fails_once_then_the_pool_recovers(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.session() as s:
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # what a server restart does to pooled connections
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        failures = 0
        for _ in range(3):
            try:
                with db.session() as s:
                    assert s.execute(text("SELECT 1")).scalar_one() == 1
                break
            except DBAPIError as exc:
                assert exc.connection_invalidated
                failures += 1
        assert failures <= 1
        with db.session() as s:
            assert s.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        db.dispose()
