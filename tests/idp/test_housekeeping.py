"""Expired IdP rows are deleted a grace period after they stop mattering; what is still in
use (and grants, people, audit) stays."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

from flask import Flask
from sqlalchemy import func, select

from idp import housekeeping
from idp.card.models import CardSession
from idp.models import (
    Attempt,
    AuthorizationCode,
    AuthRequest,
    DpopJti,
    Grant,
    IssuedAccessToken,
    LoginSession,
    Person,
    RefreshToken,
)
from idp.passkey.models import PasskeyChallenge
from idp.tokens import now_utc
from phr_core.config import Settings
from phr_core.db import Database


def _rows(now, person_id: str, tag: str, expires_at) -> list:  # type: ignore[no-untyped-def]
    common = {"auth_time": now, "acr": "urn:phr:acr:card", "amr": ["hwk"]}
    return [
        AuthorizationCode(code_hash=f"code-{tag}", client_id="rp", person_id=person_id,
                          redirect_uri="https://rp/cb", scope="openid", code_challenge="x",
                          used_at=now, expires_at=expires_at, **common),
        RefreshToken(token_hash=f"rt-{tag}", family_id=f"f-{tag}", client_id="rp",
                     person_id=person_id, scope="openid", expires_at=expires_at, **common),
        IssuedAccessToken(jti=f"at-{tag}", client_id="rp", person_id=person_id, scope="openid",
                          expires_at=expires_at),
        AuthRequest(id=f"ar-{tag}", client_id="rp", params={}, expires_at=expires_at),
        LoginSession(id_hash=f"ls-{tag}", sid=f"sid-{tag}", person_id=person_id,
                     expires_at=expires_at, **common),
        CardSession(id=f"cs-{tag}", short_code=tag[:8], purpose="login", challenge="c",
                    expires_at=expires_at),
        DpopJti(jti_hash=f"jti-{tag}", expires_at=expires_at),
        PasskeyChallenge(id=f"pc-{tag}", purpose="login", expires_at=expires_at),
        Attempt(key=f"sign-in:{tag}", window_start=expires_at, failures=3),
    ]  # fmt: skip


def test_purge_deletes_expired_rows_and_keeps_live_ones(idp_app: Flask) -> None:
    db = idp_app.extensions["phr_db"]
    now = now_utc()
    with db.session() as s:
        person = Person()
        s.add(person)
        s.flush()
        s.add(Grant(id="g-1", person_id=person.id, client_id="rp", scope="openid",
                    expires_at=now - timedelta(days=30)))  # fmt: skip
        s.add_all(_rows(now, person.id, "old", now - timedelta(days=2)))
        # Expired an hour ago: still within the grace period (a replay is still recognised).
        s.add_all(_rows(now, person.id, "recent", now - timedelta(hours=1)))
        s.add_all(_rows(now, person.id, "live", now + timedelta(minutes=5)))
    with db.session() as s:
        counts = housekeeping.purge(s)
    assert all(counts[k] == 1 for k in (
        "authorization codes", "refresh tokens", "access tokens", "authorization requests",
        "login sessions", "card sessions", "DPoP and assertion ids", "passkey challenges",
        "attempt counters",
    )), counts  # fmt: skip
    with db.session() as s:
        for model in (AuthorizationCode, RefreshToken, IssuedAccessToken, AuthRequest,
                      LoginSession, CardSession, DpopJti, PasskeyChallenge, Attempt):  # fmt: skip
            assert s.scalar(select(func.count()).select_from(model)) == 2, model
        assert s.get(Grant, "g-1") is not None and s.get(Person, person.id) is not None
    with db.session() as s:
        assert not any(housekeeping.purge(s).values())  # nothing left to do


def test_each_worker_purges_at_most_once_per_period(idp_app: Flask) -> None:
    purger = housekeeping.Purger(idp_app.extensions["phr_db"], every_s=3600)
    assert purger.maybe_purge() is None  # not right at start-up
    purger._next = 0.0
    assert purger.maybe_purge() is not None
    assert purger.maybe_purge() is None


def test_purge_runs_once_per_period_across_processes(migrated: Settings) -> None:
    """Replicas and workers each hold their own connections: of many concurrent claims on one
    database exactly one wins, and the next win comes only when the period has passed."""
    url = migrated.database_urls["idp"]
    processes = [Database(url) for _ in range(6)]  # a pool each, as separate processes have
    every = timedelta(hours=1)
    now = now_utc()
    expected = [
        (now, 1),  # the first run ever: concurrent inserts, one wins
        (now + timedelta(minutes=30), 0),  # not due yet
        (now + every, 1),  # due: concurrent updates, one wins
        (now + every, 0),  # just run
    ]
    try:
        for at, winners in expected:
            with ThreadPoolExecutor(len(processes)) as pool:
                won = list(
                    pool.map(
                        partial(housekeeping.claim, job="purge", every=every, now=at), processes
                    )
                )
            assert won.count(True) == winners, (at, won)
    finally:
        for db in processes:
            db.dispose()
