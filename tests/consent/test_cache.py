"""The PHR server's questions come from an in-process cache: fast, not touching the database
on a hit, and invalidated promptly in this process, in other processes on the host, and on
other hosts."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from consent.api.grants import grant_status
from consent.api.patients import patient_list
from consent.cache import ConsentCache
from phr_core.config import Settings
from tests.consent.conftest import Tokens, link_city

SUB = "phr-sub-cache"


def _grant(client: FlaskClient, tokens: Tokens) -> str:
    r = client.post(
        "/api/v1/grants",
        json={"subject": SUB, "client_id": "app", "scopes": ["patient/*.rs"], "categories": []},
        headers=tokens.idp,
    )
    assert r.status_code == 201
    return r.json["id"]


def test_another_worker_sees_a_revocation_at_once(
    consent_app: Flask, app_factory: Callable[[str], Flask], tokens: Tokens
) -> None:
    """Two apps on one database and var folder stand for two gunicorn workers: each has its own
    cache; the writer's commit evicts its own and bumps the stamp the other checks."""
    writer = consent_app.test_client()
    other_app = app_factory("consent")
    other_cache: ConsentCache = other_app.extensions["consent_cache"]
    other_cache.poll_interval = 3600  # so only the stamp can tell it
    other = other_app.test_client()

    gid = _grant(writer, tokens)
    assert other.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "active"
    assert other.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "active"
    syncs = other_cache.syncs

    writer.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp)
    assert other.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "revoked"
    assert other_cache.syncs == syncs + 1


def test_another_host_sees_a_revocation_within_the_poll_interval(
    consent_app: Flask, app_factory: Callable[[str], Flask], tokens: Tokens
) -> None:
    writer = consent_app.test_client()
    other_app = app_factory("consent")
    # No shared var folder: no stamp, only the change-log poll.
    other_app.extensions["consent_cache"] = ConsentCache(
        other_app.extensions["phr_db"], None, poll_interval=0.2
    )
    other = other_app.test_client()
    gid = _grant(writer, tokens)
    assert other.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "active"
    writer.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp)
    time.sleep(0.25)
    assert other.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "revoked"


def test_a_load_racing_an_eviction_is_not_kept(migrated: Settings, consent_app: Flask) -> None:
    cache: ConsentCache = consent_app.extensions["consent_cache"]

    def stale() -> str:
        cache.evict(["k"])  # a commit lands while the old value is being read
        return "old"

    assert cache.get("k", stale) == "old"
    assert cache.get("k", lambda: "new") == "new"
    assert cache.get("k", lambda: "newer") == "new"


def test_hits_do_not_query(consent_app: Flask, client: FlaskClient, tokens: Tokens) -> None:
    """Repeated decisions are answered from the cache without one SQL statement (how fast that
    is belongs to a benchmark, not to an assertion on this shared machine's clock)."""
    gid = _grant(client, tokens)
    link_city(client, tokens, SUB, "CODE-SELF", children=[])
    engine = consent_app.extensions["phr_db"].engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with consent_app.app_context():
        grant_status(gid)  # warm
        patient_list(SUB)
        event.listen(engine, "before_cursor_execute", count)
        try:
            for _ in range(200):
                grant = grant_status(gid)
                patients = patient_list(SUB)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert grant["status"] == "active"
    assert [(p["municipality"], p["code"], p["relationship"]) for p in patients] == [
        ("072028", "CODE-SELF", "self")
    ]
    # Only the change-log poll (at most once a second, however loaded the machine) may run.
    assert [q for q in statements if "consent_change" not in q.lower()] == []


def test_the_cache_stays_bounded(consent_app: Flask) -> None:
    cache = ConsentCache(consent_app.extensions["phr_db"], None, max_entries=3)
    for i in range(10):
        assert cache.get(f"k{i}", lambda i=i: i) == i
    assert len(cache._data) <= 3
