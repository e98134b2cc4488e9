"""The read path's caches never outlive what they stand for: a verified token is not served
past its expiry, a revoked grant is refused within CONSENT_TTL_S even with the consent
answers cached, and a person's newly arrived Patient is found within the short TTL."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from flask import Flask, jsonify

from phr_core.identifiers import patient_id
from phr_core.tokens import AccessToken, InvalidToken
from phr_server.authn import TokenCache
from phr_server.policy import CONSENT_TTL_S, HttpConsentDirectory, PatientLink, PatientResolver
from tests.browser import live_server
from tests.phr_server.conftest import MUNI, World, patient, transaction


def test_token_cache_serves_a_verified_token_only_until_it_expires() -> None:
    calls: list[str] = []
    clock = [1_000_000.0]  # the cache's clock, moved by hand: the test never races a real one
    expires = int(clock[0]) + 1

    def verify(raw: str) -> AccessToken:
        calls.append(raw)
        if clock[0] >= expires:
            raise InvalidToken("token expired")
        return AccessToken("sub", "app", frozenset(), expires)

    cache = TokenCache(clock=lambda: clock[0])
    assert cache.get("t", verify).subject == "sub"
    clock[0] = expires - 0.01  # still inside: served from the cache
    assert cache.get("t", verify).subject == "sub"
    assert calls == ["t"]  # the second came from the cache
    clock[0] = expires  # `exp` reached: verified again, and refused
    try:
        cache.get("t", verify)
    except InvalidToken:
        pass
    else:
        raise AssertionError("an expired token was served from the cache")
    assert calls == ["t", "t"]


def test_token_cache_makes_room_by_dropping_the_oldest() -> None:
    calls: list[str] = []

    def verify(raw: str) -> AccessToken:
        calls.append(raw)
        return AccessToken(raw, "app", frozenset(), int(time.time()) + 60)

    cache = TokenCache(size=2)
    for raw in ("a", "b", "c"):
        cache.get(raw, verify)
    cache.get("c", verify)
    cache.get("b", verify)
    assert calls == ["a", "b", "c"]  # b and c still cached
    cache.get("a", verify)
    assert calls == ["a", "b", "c", "a"]  # a was the one dropped


def test_token_cache_drops_entries_whose_time_is_over_as_new_ones_come() -> None:
    """A soak makes new tokens all the time (every refresh): the cache keeps about a minute of
    them, not `size` dead ones."""
    clock = [1_000_000.0]

    def verify(raw: str) -> AccessToken:
        return AccessToken(raw, "app", frozenset(), int(clock[0]) + 300)

    cache = TokenCache(size=4096, ttl=0.2, clock=lambda: clock[0])
    for i in range(50):
        cache.get(f"old-{i}", verify)
    clock[0] += 0.19
    cache.get("young", verify)
    assert len(cache._items) == 51  # none of the 50 is over yet: all kept
    clock[0] += 0.02
    cache.get("new", verify)
    assert list(cache._items) == [
        hashlib.sha256(b"young").hexdigest(),
        hashlib.sha256(b"new").hexdigest(),
    ]  # the 50 whose 0.2 s were over went with the next insert


def test_a_cached_token_is_refused_once_past_expiry_and_leeway(
    world: World, family: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's token cache and verifier on one clock, moved by hand (the verifier is the
    real one, told the time): a token verified and cached inside its leeway is refused once
    expiry and leeway are over, whatever the machine's load."""
    from phr_core.tokens import LEEWAY_S

    clock = [time.time()]
    verifier = world.app.extensions["phr_verifier"]

    class AtClock:  # the verifier as the server calls it, at the test's time
        def verify(self, raw: str) -> AccessToken:
            return verifier.verify(raw, now=clock[0])

    monkeypatch.setitem(world.app.extensions, "phr_verifier", AtClock())
    monkeypatch.setitem(world.app.extensions, "phr_token_cache", TokenCache(clock=lambda: clock[0]))
    world.user("sub-child", codes=[("C1", "self")])
    gid = next(iter(world.consent.grants))
    claims = {"sub": "sub-child", "client_id": "app-1", "scope": "patient/*.rs", "grant_id": gid}
    exp = int(clock[0]) - LEEWAY_S + 1
    token = world.token(claims, exp=exp)
    ref = world.path(family["urn:uuid:o3"])
    assert world.get(ref, token).status_code == 200  # inside the leeway: verified, cached
    clock[0] = exp + LEEWAY_S + 0.5
    resp = world.get(ref, token)
    assert resp.status_code == 401
    assert "expired" in resp.get_json()["issue"][0]["diagnostics"]


def test_a_revoked_grant_is_refused_within_the_consent_ttl(
    world: World, family: dict[str, str]
) -> None:
    """The consent service over HTTP with its answers cached (CONSENT_TTL_S): the revocation
    bites within that bound, though the token itself stays valid and cached."""
    grants: dict[str, dict[str, Any]] = {}
    consent = Flask("consent_stand_in")

    @consent.get("/api/v1/grants/<gid>")
    def grant(gid: str):  # type: ignore[no-untyped-def]
        return jsonify(grants[gid])

    @consent.get("/api/v1/subjects/<sub>/patients")
    def patients(sub: str):  # type: ignore[no-untyped-def]
        return jsonify(patients=[{"municipality": MUNI, "code": "C1", "relationship": "self"}])

    clock = [1000.0]  # the directory's clock, moved by hand
    with live_server(consent) as url:
        world.app.extensions["phr_consent"] = HttpConsentDirectory(
            url, service_token=lambda: "s", clock=lambda: clock[0]
        )
        grants["g-1"] = {
            "id": "g-1",
            "status": "active",
            "subject": "sub-child",
            "client_id": "app-1",
            "scopes": ["patient/*.rs"],
        }
        token = world.token(
            {"sub": "sub-child", "client_id": "app-1", "scope": "patient/*.rs", "grant_id": "g-1"}
        )
        ref = world.path(family["urn:uuid:o3"])
        assert world.get(ref, token).status_code == 200
        grants["g-1"] = {**grants["g-1"], "status": "revoked"}
        clock[0] += CONSENT_TTL_S - 0.01
        assert world.get(ref, token).status_code == 200  # the cached answer, until the TTL
        clock[0] += 0.01  # CONSENT_TTL_S since the consent service was asked
        assert world.get(ref, token).status_code == 403
        assert CONSENT_TTL_S <= 5


def test_patient_ids_found_are_kept_missing_ones_asked_again_soon(world: World) -> None:
    clock = [1000.0]  # the resolver's clock, moved by hand: the test never races a real one
    resolver = PatientResolver(ttl=0.3, found_ttl=60, clock=lambda: clock[0])
    link = PatientLink(MUNI, "N1", "self")
    db = world.app.extensions["phr_db"]
    with db.session() as s:
        assert resolver.ids(s, [link]) == {}  # not loaded yet
    resp = world.post(world.connector(), transaction(patient("urn:uuid:n1", "N1")))
    assert resp.status_code == 200
    pid = patient_id(MUNI, "N1")
    with db.session() as s:
        assert resolver.ids(s, [link]) == {}  # the "missing" answer is still cached
    clock[0] += 0.35
    with db.session() as s:
        assert resolver.ids(s, [link]) == {pid: "self"}  # asked again: found
    # a found id is answered from the cache, without the database
    assert resolver.ids(None, [link]) == {pid: "self"}
