"""The portal's data sources, withdrawal with deletion, account deletion, and the notices inbox,
with the real PHR server: the consent app and the PHR server both run on loopback on the test
database; records arrive through the PHR server's own door (a connector's transaction), which
tells the consent service whose records arrived."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from consent import records
from consent.models import LinkRequest, Notice
from consent.phr_erase import PhrEraser
from phr_core.config import Settings
from phr_core.identifiers import pseudonym_system, source_record_system
from phr_server.arrivals import ArrivalNotifier
from phr_server.models import StoredResource
from portal import sources
from tests.browser import live_server
from tests.consent.conftest import ATTRIBUTES, CITY, Tokens, link_city

PARENT = "sub-parent-1"
OTHER_PARENT = "sub-parent-2"

# a body weight is held to the R4 vital signs profile (phr_server/vital_signs.py)
VITAL_SIGNS = "http://terminology.hl7.org/CodeSystem/observation-category"


@dataclass
class Stack:
    consent: Flask
    fhir: Flask
    fhir_url: str
    tokens: Tokens
    settings: Settings

    @property
    def client(self) -> FlaskClient:
        return self.consent.test_client()

    def load(self, *people: tuple[str, str]) -> dict[str, Any]:
        """A connector's transaction: each (code, weight key) gets a Patient and a weight."""
        entries = []
        for i, (code, key) in enumerate(people):
            pid = f"urn:uuid:00000000-0000-0000-0000-00000000000{i}"
            entries.append(
                {
                    "fullUrl": pid,
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [{"system": pseudonym_system(CITY), "value": code}],
                        "gender": "female",
                        "birthDate": "2025-04-01",
                    },
                    "request": {
                        "method": "PUT",
                        "url": f"Patient?identifier={pseudonym_system(CITY)}|{code}",
                    },
                }
            )
            system = source_record_system(CITY, "mch")
            entries.append(
                {
                    "resource": {
                        "resourceType": "Observation",
                        "identifier": [{"system": system, "value": key}],
                        "status": "final",
                        "category": [{"coding": [{"system": VITAL_SIGNS, "code": "vital-signs"}]}],
                        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                        "subject": {"reference": pid},
                        "effectiveDateTime": "2025-05-01",
                        "valueQuantity": {
                            "value": 4.2,
                            "unit": "kg",
                            "system": "http://unitsofmeasure.org",
                            "code": "kg",
                        },
                    },
                    "request": {"method": "PUT", "url": f"Observation?identifier={system}|{key}"},
                }
            )
        token = self.tokens.mint(
            "system/*.write",
            client_id=f"connector-{CITY}",
            municipality=CITY,
            audience=self.settings.urls["fhir"],
        )
        resp = self.fhir.test_client().post(
            "/",
            data=json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )
        assert resp.status_code == 200, resp.get_json()
        self.fhir.extensions["phr_arrivals"].drain()
        return resp.get_json()

    def stored(self, code: str) -> int:
        """How many rows of the PHR server still hold this code's Patient."""
        token = self.tokens.mint(
            "system/*.read",
            client_id=f"connector-{CITY}",
            municipality=CITY,
            audience=self.settings.urls["fhir"],
        )
        found = self.fhir.test_client().get(
            f"/Patient?identifier={pseudonym_system(CITY)}|{code}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert found.status_code == 200
        return len(found.get_json().get("entry", []))

    def observations(self) -> int:
        with self.fhir.extensions["phr_db"].session() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(StoredResource)
                    .where(StoredResource.resource_type == "Observation")
                )
                or 0
            )


@pytest.fixture
def stack(
    consent_app: Flask, app_factory: Callable[[str], Flask], tokens: Tokens, migrated: Settings
) -> Iterator[Stack]:
    fhir = app_factory("fhir")
    with live_server(fhir) as fhir_url, live_server(consent_app) as consent_url:
        erase_token = lambda: tokens.mint(  # noqa: E731
            "phr/erase",
            client_id=migrated.option("PHR_CONSENT_SERVICE_CLIENT_ID"),
            audience=migrated.urls["fhir"],
        )
        consent_app.extensions["consent_eraser"] = PhrEraser(fhir_url, erase_token)
        fhir.extensions["phr_arrivals"] = ArrivalNotifier(
            consent_url, lambda: tokens.mint("consent/arrivals.write", client_id="phr-server")
        )
        yield Stack(consent_app, fhir, fhir_url, tokens, migrated)


def sign_in(client: FlaskClient, subject: str) -> str:
    """A portal session as the sign-in callback leaves it; returns the CSRF token."""
    with client.session_transaction() as sess:
        sess["sub"] = subject
        sess["csrf"] = "csrf-" + subject
    return "csrf-" + subject


def consented_codes(client: FlaskClient, tokens: Tokens) -> list[str]:
    resp = client.get(
        f"/api/v1/municipalities/{CITY}/consents?category=mch", headers=tokens.connector()
    )
    assert resp.status_code == 200
    return resp.json["codes"]


def consent_since(client: FlaskClient, tokens: Tokens) -> dict[str, str]:
    resp = client.get(
        f"/api/v1/municipalities/{CITY}/consents?category=mch", headers=tokens.connector()
    )
    assert sorted(resp.json["since"]) == resp.json["codes"]
    return resp.json["since"]


CHILD = [{"code": "C-1", "birthdate": "2025-04-01", "relationship": "mother"}]


def test_sources_notices_and_withdrawal_with_deletion(stack: Stack) -> None:
    client = stack.client
    link_city(client, stack.tokens, PARENT, "P-1", children=CHILD)
    csrf = sign_in(client, PARENT)
    page = client.get("/me/sources").get_data(as_text=True)
    assert "同意しています" in page and "確認済み" in page and "まだ届いていません" in page

    # The city's connector loads the mother's and the child's records through the PHR server,
    # which tells the consent service: one notice each, and the source's last update moves.
    stack.load(("P-1", "w-p1"), ("C-1", "w-c1"))
    page = client.get("/me/sources").get_data(as_text=True)
    assert "まだ届いていません" not in page
    assert re.search(r'class="last-update"><time datetime="\d{4}-\d\d-\d\d"', page)
    inbox = client.get("/me/notices").get_data(as_text=True)
    assert "新しい記録が届きました" in inbox and "お子さんの新しい記録が届きました" in inbox
    assert "未読2件" in inbox
    assert "(未読2件)" in client.get("/").get_data(as_text=True)  # on the menu too
    # An unchanged re-run changes nothing and adds no notice.
    stack.load(("P-1", "w-p1"), ("C-1", "w-c1"))
    with stack.consent.extensions["phr_db"].session() as s:
        ids = list(s.scalars(select(Notice.id).where(Notice.subject == PARENT)))
    assert len(ids) == 2
    r = client.post("/me/notices/read", data={"csrf": csrf, "id": str(ids[0])})
    assert r.status_code == 303
    assert "未読1件" in client.get("/me/notices").get_data(as_text=True)
    assert client.post("/me/notices/read", data={"csrf": "wrong"}).status_code == 400

    before = consent_since(client, stack.tokens)
    # Withdraw, asking for what was loaded (the child's too) to go.
    confirm = client.get(f"/me/sources/{CITY}/withdraw?lang=en").get_data(as_text=True)
    assert "Delete the records that already arrived too" in confirm
    r = client.post(
        f"/me/sources/{CITY}/withdraw",
        data={"csrf": csrf, "loaded": "delete", "children": "1"},
    )
    assert r.status_code == 303 and "withdrawn=1" in r.headers["Location"]
    assert "erased=4" in r.headers["Location"]
    assert consented_codes(client, stack.tokens) == []  # extraction stops at once
    assert stack.stored("P-1") == 0 and stack.stored("C-1") == 0
    assert stack.observations() == 0
    page = client.get(r.headers["Location"] + "&lang=ja").get_data(as_text=True)
    assert "同意を取り消しました" in page and "4件削除" in page
    # History is kept: the consent has a new version, the old one is still there.
    with stack.consent.extensions["phr_db"].session() as s:
        own = [
            v
            for v in records.current(s, kind=records.PROVIDER, subject=PARENT)
            if v.record.patient_code is None
        ]
        events = [v.event for v in records.history(s, own[0].id)]
    assert events == [records.GIVEN, records.WITHDRAWN]

    # Consenting again from the portal: already linked, so no new link request is needed.
    r = client.post(
        f"/me/sources/{CITY}/consent",
        data={"csrf": csrf, "category": ["mch", "vaccination"], "children": "1"},
    )
    assert r.status_code == 303 and r.headers["Location"] == "/me/sources?consented=1"
    assert consented_codes(client, stack.tokens) == ["C-1", "P-1"]
    # A new consent, so `since` moved for both: the connector sends their records again
    # (the deleted ones would otherwise never come back; tests/connectors/test_pipeline.py).
    after = consent_since(client, stack.tokens)
    assert after["P-1"] > before["P-1"] and after["C-1"] > before["C-1"]


def test_withdraw_keeping_what_was_loaded_and_a_shared_child(stack: Stack) -> None:
    client = stack.client
    link_city(client, stack.tokens, PARENT, "P-1", children=CHILD)
    father = [{**CHILD[0], "relationship": "father"}]
    link_city(client, stack.tokens, OTHER_PARENT, "P-2", children=father)
    stack.load(("P-1", "w-p1"), ("C-1", "w-c1"))
    csrf = sign_in(client, PARENT)
    # Keep: extraction stops, the records stay.
    r = client.post(f"/me/sources/{CITY}/withdraw", data={"csrf": csrf, "loaded": "keep"})
    assert r.headers["Location"] == "/me/sources?withdrawn=1"
    assert stack.stored("P-1") == 1
    assert consented_codes(client, stack.tokens) == ["C-1", "P-2"]  # the father's consent
    # "You can delete them later": the same page, now only offering the deletion.
    assert 'class="button danger delete-loaded"' in client.get("/me/sources").get_data(True)
    later = client.get(f"/me/sources/{CITY}/withdraw").get_data(as_text=True)
    assert "から届いた記録を削除する" in later and 'value="keep"' not in later
    # The PHR server is down: a readable page, nothing deleted.
    working = stack.consent.extensions["consent_eraser"]
    stack.consent.extensions["consent_eraser"] = PhrEraser("http://127.0.0.1:9", lambda: "x")
    down = client.post(f"/me/sources/{CITY}/withdraw", data={"csrf": csrf, "loaded": "delete"})
    assert down.status_code == 503 and stack.stored("P-1") == 1
    stack.consent.extensions["consent_eraser"] = working
    r = client.post(
        f"/me/sources/{CITY}/withdraw", data={"csrf": csrf, "loaded": "delete", "children": "1"}
    )
    assert r.status_code == 303 and "erased=2" in r.headers["Location"]  # her Patient + weight
    assert "shared=1" in r.headers["Location"]  # the child stays: the father reaches it
    assert stack.stored("P-1") == 0 and stack.stored("C-1") == 1
    # Account deletion with the children's records: the child has another guardian, so the
    # child's records stay for him; the mother's go.
    sign_in(client, PARENT)
    review = client.post("/me/delete/review", data={"csrf": csrf, "children": "1"})
    text = review.get_data(as_text=True)
    assert "記録1人分を削除します" in text and "もう一人の保護者も見られる" in text
    done = client.post("/me/delete", data={"csrf": csrf, "children": "1", "understood": "1"})
    assert done.status_code == 200
    assert stack.stored("P-1") == 0 and stack.stored("C-1") == 1
    assert consented_codes(client, stack.tokens) == ["C-1", "P-2"]  # the father's stay


def test_account_deletion_in_two_steps(stack: Stack) -> None:
    client = stack.client
    link_city(client, stack.tokens, PARENT, "P-1", children=CHILD)
    grant = client.post(
        "/api/v1/grants",
        json={"subject": PARENT, "client_id": "demo-app", "scopes": ["patient/*.rs"]},
        headers=stack.tokens.idp,
    ).json
    stack.load(("P-1", "w-p1"), ("C-1", "w-c1"))
    csrf = sign_in(client, PARENT)

    step1 = client.get("/me/delete").get_data(as_text=True)
    assert "データの削除" in step1 and "同意の履歴" in step1
    review = client.post("/me/delete/review", data={"csrf": csrf, "children": "1"})
    text = review.get_data(as_text=True)
    assert "自治体1か所、アプリ1件の同意を取り消し、記録2人分を削除します" in text
    assert "元に戻せません" in text
    # Without the explicit "I understand", nothing happens.
    back = client.post("/me/delete", data={"csrf": csrf, "children": "1"})
    assert back.status_code == 303 and back.headers["Location"] == "/me/delete"
    assert stack.stored("P-1") == 1
    # A forged form (no CSRF token) is refused.
    bad = client.post("/me/delete", data={"children": "1", "understood": "1"})
    assert bad.status_code == 400 and stack.stored("P-1") == 1

    done = client.post("/me/delete", data={"csrf": csrf, "children": "1", "understood": "1"})
    assert done.status_code == 200
    assert "削除しました" in done.get_data(as_text=True)
    assert stack.stored("P-1") == 0 and stack.stored("C-1") == 0
    assert stack.observations() == 0
    # Consents withdrawn (the app's grant too: the PHR server and the IdP refuse it), links
    # gone, notices gone, signed out.
    status = client.get(f"/api/v1/grants/{grant['id']}", headers=stack.tokens.phr).json
    assert status["status"] == "revoked"
    patients = client.get(f"/api/v1/subjects/{PARENT}/patients", headers=stack.tokens.phr).json
    assert patients["patients"] == []
    assert consented_codes(client, stack.tokens) == []
    with stack.consent.extensions["phr_db"].session() as s:
        assert s.scalar(select(func.count()).where(Notice.subject == PARENT)) == 0
    assert client.get("/me/apps").status_code == 302
    # The PHR server's audit trail stays and records the erase.
    with stack.fhir.extensions["phr_db"].session() as s:
        audits = s.scalar(
            select(func.count())
            .select_from(StoredResource)
            .where(StoredResource.resource_type == "AuditEvent")
        )
    assert audits and audits >= 3  # two loads and the erase (and the reads)


def test_deletion_when_the_phr_server_is_down_changes_nothing(stack: Stack) -> None:
    client = stack.client
    link_city(client, stack.tokens, PARENT, "P-1")
    stack.consent.extensions["consent_eraser"] = PhrEraser("http://127.0.0.1:9", lambda: "unused")
    csrf = sign_in(client, PARENT)
    resp = client.post("/me/delete", data={"csrf": csrf, "understood": "1"})
    assert resp.status_code == 503
    assert "何も削除していません" in resp.get_data(as_text=True)
    assert consented_codes(client, stack.tokens) == ["P-1"]


def test_consenting_from_the_portal_needs_the_card_attributes(stack: Stack) -> None:
    client = stack.client
    csrf = sign_in(client, PARENT)
    none = client.post(f"/me/sources/{CITY}/consent", data={"csrf": csrf})
    assert none.status_code == 400 and "一つ以上" in none.get_data(as_text=True)
    r = client.post(
        f"/me/sources/{CITY}/consent",
        data={"csrf": csrf, "category": ["mch", "vaccination"], "children": "1"},
    )
    assert r.status_code == 303 and r.headers["Location"] == "/auth/login"
    with client.session_transaction() as sess:
        pending = dict(sess[sources.PENDING_LINK])
    assert pending["city"] == CITY and pending["categories"] == ["mch", "vaccination"]
    assert "name" not in json.dumps(pending)  # no personal data in the cookie
    with stack.consent.test_request_context("/auth/callback"):
        from flask import session

        session[sources.PENDING_LINK] = pending
        assert sources.pending_link() == pending
        session[sources.PENDING_LINK] = {**pending, "at": pending["at"] - 3600}
        assert sources.pending_link() is None  # abandoned an hour ago: not recorded later
    with stack.consent.test_request_context("/auth/callback"):
        # A sign-in without a card brings no attributes: nothing is recorded.
        assert sources.finish_link(PARENT, pending, None) == "/me/sources?need_card=1"
        assert sources.finish_link(PARENT, pending, dict(ATTRIBUTES)) == "/me/sources?consented=1"
    with stack.consent.extensions["phr_db"].session() as s:
        req = s.scalar(select(LinkRequest).where(LinkRequest.subject == PARENT))
        assert req is not None and req.status == "pending" and req.include_children
        assert req.attributes and ATTRIBUTES["name"] not in req.attributes  # sealed
    pulled = client.get(
        f"/api/v1/municipalities/{CITY}/link-requests", headers=stack.tokens.connector()
    )
    assert [r["name"] for r in pulled.json["requests"]] == [ATTRIBUTES["name"]]


def _app_token(tokens: Tokens, grant_id: str, sub: str = PARENT, client_id: str = "diary") -> str:
    return tokens.mint("consent/notices.read", client_id=client_id, sub=sub, grant_id=grant_id)


def test_apps_read_notices_only_with_the_persons_grant(stack: Stack) -> None:
    client = stack.client
    link_city(client, stack.tokens, PARENT, "P-1", children=CHILD)
    stack.load(("C-1", "w-c1"))

    def grant(scopes: list[str]) -> str:
        doc = client.post(
            "/api/v1/grants",
            json={"subject": PARENT, "client_id": "diary", "scopes": scopes},
            headers=stack.tokens.idp,
        ).json
        return doc["id"]

    good = grant(["consent/notices.read", "patient/Immunization.rs"])
    headers = {"Authorization": "Bearer " + _app_token(stack.tokens, good)}
    resp = client.get("/api/v1/me/notices", headers=headers)
    assert resp.status_code == 200, resp.json
    assert [(n["kind"], n["about"]) for n in resp.json["notices"]] == [("records", "child")]
    # A grant without the scope, another person's token, a revoked grant: refused.
    narrow = grant(["patient/Immunization.rs"])
    for token in (
        _app_token(stack.tokens, narrow),
        _app_token(stack.tokens, good, sub=OTHER_PARENT),
        _app_token(stack.tokens, good, client_id="other-app"),
    ):
        refused = client.get("/api/v1/me/notices", headers={"Authorization": "Bearer " + token})
        assert refused.status_code == 403 and refused.json["error"] == "insufficient_scope"
    client.post(f"/api/v1/grants/{good}/revoke", json={}, headers=stack.tokens.idp)
    assert client.get("/api/v1/me/notices", headers=headers).status_code == 403
    assert client.get("/api/v1/me/notices").status_code == 401


def test_arrivals_api_checks_its_input(stack: Stack) -> None:
    client = stack.client
    phr = stack.tokens.headers("consent/arrivals.write", client_id="phr-server")
    for body, words in [
        ([], "JSON object"),
        ({"municipality": "7", "codes": ["a"]}, "six-digit"),
        ({"municipality": CITY, "codes": []}, "codes"),
        ({"municipality": CITY, "codes": [1]}, "codes"),
    ]:
        resp = client.post("/api/v1/arrivals", json=body, headers=phr)
        assert resp.status_code == 400 and words in resp.json["error_description"], body
    wrong = client.post(
        "/api/v1/arrivals", json={"municipality": CITY, "codes": ["a"]}, headers=stack.tokens.idp
    )
    assert wrong.status_code == 403


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_withdrawal_and_deletion_pages_on_a_phone(stack: Stack) -> None:
    """The confirmation pages in Chromium at 360×740: withdraw keeping the records, delete the
    account in two steps; screenshots in var/screenshots/portal-life/."""
    from portal.app import PORTAL_SESSION_COOKIE
    from tests.browser import browser_page

    shots = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "portal-life"
    shots.mkdir(parents=True, exist_ok=True)
    client = stack.client
    link_city(client, stack.tokens, PARENT, "P-1", children=CHILD)
    stack.load(("P-1", "w-p1"), ("C-1", "w-c1"))
    sign_in(client, PARENT)
    client.get("/")  # the test client now holds the signed session cookie
    cookie = client.get_cookie(PORTAL_SESSION_COOKIE)
    assert cookie is not None
    with live_server(stack.consent) as base, browser_page("ja-JP") as page:
        page.context.add_cookies(
            [{"name": PORTAL_SESSION_COOKIE, "value": cookie.value, "url": base}]
        )
        page.set_viewport_size({"width": 360, "height": 740})

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= 360, name

        page.goto(base + "/me/sources")
        shot("sources")
        page.click("a.withdraw")
        shot("withdraw")
        page.click("#withdraw-confirm")  # "keep" is preselected
        page.wait_for_selector("#withdrawn-notice")
        assert stack.stored("P-1") == 1
        page.goto(base + "/me/notices")
        shot("notices")
        page.goto(base + "/me/delete")
        shot("delete-step-1")
        page.check("#delete-children")
        page.click("#delete-next")
        page.wait_for_selector("#delete-review")
        shot("delete-step-2")
        page.click("#delete-confirm")  # the "I understand" box is required by the browser
        assert page.url.endswith("/me/delete/review") and stack.stored("P-1") == 1
        page.check("#understood")
        page.click("#delete-confirm")
        page.wait_for_selector("#deleted")
        shot("deleted")
        assert "削除しました" in page.locator("#deleted").inner_text()
    assert stack.stored("P-1") == 0 and stack.stored("C-1") == 0
