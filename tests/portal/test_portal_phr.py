"""The portal reads the signed-in person's records from the PHR server with the person's own
authority: the real IdP issues the portal a first-party access token, the portal keeps it (and
the refresh token) server side, encrypted, and the real PHR server lets it reach the person's
own and children's Patients, and nobody else's."""

from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import select

from consent.models import PortalTokens
from phr_core.demo_data import DEMO_FAMILY
from phr_server.demo_family import CHILD_ID as CHILD
from phr_server.demo_family import PARENT_ID as PARENT
from portal import phr
from portal.app import PORTAL_SESSION_COOKIE
from portal.auth import TOKENS, token_store
from portal.token_store import Tokens, _hash
from tests.portal import live_platform
from tests.portal.live_platform import (
    STRANGER,
    TIMEOUT,
    Platform,
    form_value,
    sign_in,
)

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


class Portal:
    """Runs portal code inside a request carrying this browser's session cookie."""

    def __init__(self, p: Platform, browser: requests.Session) -> None:
        self.app = p.apps["consent"]
        self.cookie = browser.cookies.get(PORTAL_SESSION_COOKIE)

    def context(self):  # type: ignore[no-untyped-def]
        return self.app.test_request_context(  # type: ignore[attr-defined]
            "/", headers={"Cookie": f"{PORTAL_SESSION_COOKIE}={self.cookie}"}
        )

    def handle(self) -> str:
        from flask import session

        with self.context():
            return session[TOKENS]


def _signed_in(p: Platform, person: str | None = None) -> requests.Session:
    browser = requests.Session()
    if person is None:
        sign_in(browser, p)
    else:
        sign_in(browser, p, person)
    return browser


def test_the_portal_reads_its_persons_and_childrens_records(platform: Platform) -> None:
    p = platform
    portal = Portal(p, _signed_in(p))
    with portal.context():
        client = phr.for_session()
        patients = {pt["id"]: pt for pt in client.patients()}
        assert set(patients) == {f"{PARENT}", f"{CHILD}"}
        assert patients[f"{CHILD}"]["birthDate"] == DEMO_FAMILY.child_birth().isoformat()
        weights = client.records("Observation", f"{CHILD}", [("code", "http://loinc.org|29463-7")])
        assert len(weights) == 6
        vaccines = client.records("Immunization", f"{CHILD}")
        assert {v["vaccineCode"]["coding"][0]["code"] for v in vaccines} >= {"HepB", "MR"}
        claims = client.records("ExplanationOfBenefit", f"{PARENT}")
        assert len(claims) == 2
        assert client.records("ExplanationOfBenefit", f"{CHILD}") == []
        # $everything arrives in chunks and is a Bundle of the child's record.
        body = b"".join(client.everything(f"{CHILD}"))
        bundle = json.loads(body)
        types = {e["resource"]["resourceType"] for e in bundle["entry"]}
        assert types == {"Patient", "Observation", "Immunization", "Provenance"}
        # Each load's Provenance names the city the records came from.
        provenance = [e["resource"] for e in bundle["entry"]
                      if e["resource"]["resourceType"] == "Provenance"]  # fmt: skip
        custodians = [a for p in provenance for a in p["agent"]
                      if a["type"]["coding"][0]["code"] == "custodian"]  # fmt: skip
        assert custodians and all("072028" in json.dumps(a["who"]) for a in custodians)
        # The PHR server audited these reads as the portal's.
        page = client.audit_events(count=5)
        assert len(page.resources) == 5 and page.next_cursor
        recorded = [e["recorded"] for e in page.resources]
        assert recorded == sorted(recorded, reverse=True)  # newest first
        portal_id = p.settings.option("PHR_CONSENT_CLIENT_ID")
        agents = {a["who"]["identifier"]["value"] for a in page.resources[0]["agent"]}
        assert portal_id in agents
        older = client.audit_events(count=5, cursor=page.next_cursor)
        assert older.resources and older.resources[0]["id"] not in {e["id"] for e in page.resources}


def test_another_person_reaches_none_of_it(platform: Platform) -> None:
    p = platform
    portal = Portal(p, _signed_in(p, STRANGER))
    with portal.context():
        client = phr.for_session()
        assert client.patients() == []
        with pytest.raises(phr.NotReachable):
            b"".join(client.everything(f"{CHILD}"))
        assert client.records("Observation", f"{CHILD}") == []
        assert client.audit_events().resources == []


def test_tokens_stay_server_side_encrypted_refreshed_and_dropped_on_sign_out(
    platform: Platform,
) -> None:
    p = platform
    browser = _signed_in(p)
    portal = Portal(p, browser)
    handle = portal.handle()
    # The cookie carries the handle only; the row is keyed by its hash and sealed.
    assert len(browser.cookies.get(PORTAL_SESSION_COOKIE)) < 1500
    with portal.context():
        store = token_store()
        db = store.db
        with db.session() as s:
            row = s.scalars(select(PortalTokens)).one()
            sealed = row.sealed
        assert row.handle_hash == _hash(handle) and handle not in sealed
        first = store._open(row.handle_hash, sealed)
        assert first.refresh_token and first.access_token[:20] not in sealed

        # An access token about to expire is refreshed through the IdP (rotation included).
        with db.session() as s:
            row = s.get(PortalTokens, _hash(handle))
            row.sealed = store._seal(
                row.handle_hash, Tokens(first.access_token, first.refresh_token, 0)
            )
        client = phr.for_session()
        assert {pt["id"] for pt in client.patients()} == {f"{PARENT}", f"{CHILD}"}
        with db.session() as s:
            second = store._open(_hash(handle), s.get(PortalTokens, _hash(handle)).sealed)
        assert second.access_token != first.access_token
        assert second.refresh_token != first.refresh_token

    # Sign-out drops the row and revokes the refresh token at the IdP.
    home = browser.get(p.portal + "/", timeout=TIMEOUT)
    out = browser.post(
        p.portal + "/auth/logout",
        data={"csrf": form_value(home.text, "csrf")},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert out.status_code == 302
    with db.session() as s:
        assert s.scalars(select(PortalTokens)).all() == []
    meta = requests.get(p.idp + "/.well-known/openid-configuration", timeout=TIMEOUT).json()
    secret = p.settings.secret("PHR_CONSENT_CLIENT_SECRET")
    refused = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": second.refresh_token},
        auth=(p.settings.option("PHR_CONSENT_CLIENT_ID"), secret),
        timeout=TIMEOUT,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # The old browser session (cookie replayed) has no tokens any more.
    with portal.context(), pytest.raises(phr.SignedOut):
        phr.for_session().patients()


def test_concurrent_requests_refresh_once(platform: Platform) -> None:
    """Refresh tokens rotate and a replayed one revokes the family at the IdP: requests of one
    browser that find the access token expired at the same moment must refresh only once."""
    import threading

    p = platform
    portal = Portal(p, _signed_in(p))
    handle = portal.handle()
    with portal.context():
        store = token_store()
        key = _hash(handle)
        with store.db.session() as s:
            row = s.get(PortalTokens, key)
            old = store._open(key, row.sealed)
            row.sealed = store._seal(key, Tokens(old.access_token, old.refresh_token, 0))
    results: list[object] = []

    def read() -> None:
        try:
            with portal.context():
                results.append(len(phr.for_session().patients()))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [2, 2, 2, 2]
    with portal.context():
        with store.db.session() as s:
            new = store._open(key, s.get(PortalTokens, key).sealed)
        assert new.refresh_token != old.refresh_token
        # The family is intact: the next refresh works too.
        with store.db.session() as s:
            row = s.get(PortalTokens, key)
            row.sealed = store._seal(key, Tokens(new.access_token, new.refresh_token, 0))
        assert len(phr.for_session().patients()) == 2
