"""IdP replicas that start at the same moment on one empty database make one set of signing
keys between them, not one each (idp.app.prepare takes turns on PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from idp.app import prepare
from idp.models import SigningKey
from phr_core.config import Settings
from phr_core.db import Database


def test_replicas_starting_at_once_make_one_current_key_per_algorithm(
    migrated: Settings, db_backend: str
) -> None:
    if db_backend == "sqlite":
        pytest.skip("replicas share PostgreSQL; `phr dev run --replicas` refuses SQLite")
    with ThreadPoolExecutor(4) as pool:  # each call opens its own connections, as a process does
        list(pool.map(lambda _: prepare(migrated), range(4)))
    db = Database(migrated.database_urls["idp"])
    try:
        with db.session() as s:
            rows = s.execute(
                select(SigningKey.alg, SigningKey.state, func.count()).group_by(
                    SigningKey.alg, SigningKey.state
                )
            ).all()
    finally:
        db.dispose()
    assert sorted(rows) == [("ES256", "current", 1), ("ES256", "next", 1),
                            ("RS256", "current", 1), ("RS256", "next", 1)]  # fmt: skip
