"""Municipality linkage: consent makes a link request with card-verified attributes, the city's
connector answers with its pseudonymous code, the attributes are deleted, and the consents list
follows consent and withdrawal."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from consent.models import LinkRequest, PatientLink
from phr_core.webapp import database
from tests.consent.conftest import ATTRIBUTES, CITY, Tokens, link_city

SUB = "phr-sub-hanako"


def _consent(client: FlaskClient, tokens: Tokens, categories: list[str], **kw: object) -> dict:
    r = client.post(
        f"/api/v1/subjects/{SUB}/municipalities/{CITY}/consent",
        json={"categories": categories, "attributes": ATTRIBUTES} | kw,
        headers=tokens.idp,
    )
    assert r.status_code == 201, r.json
    return r.json


def _codes(client: FlaskClient, tokens: Tokens, category: str) -> list[str]:
    r = client.get(
        f"/api/v1/municipalities/{CITY}/consents?category={category}", headers=tokens.connector()
    )
    assert r.status_code == 200, r.json
    return r.json["codes"]


def test_link_request_flow(client: FlaskClient, tokens: Tokens, consent_app: Flask) -> None:
    made = _consent(client, tokens, ["mch", "vaccination"])
    assert made["linked"] is False and made["consent"]["kind"] == "provider"
    rid = made["link_request"]

    # Stored encrypted: the name is nowhere in the row.
    with consent_app.app_context(), database().session() as s:
        row = s.get(LinkRequest, rid)
        assert row.attributes and ATTRIBUTES["name"] not in row.attributes
        assert "会津" not in row.attributes

    pending = client.get(f"/api/v1/municipalities/{CITY}/link-requests", headers=tokens.connector())
    assert pending.status_code == 200
    [req] = pending.json["requests"]
    assert req["id"] == rid and req["include_children"] is True
    assert {k: req[k] for k in ATTRIBUTES} == ATTRIBUTES
    # Nothing flows to the city before it has found the person.
    assert _codes(client, tokens, "mch") == []

    r = client.post(
        f"/api/v1/municipalities/{CITY}/link-requests/{rid}",
        json={"code": "PSEUDO-HANAKO"},
        headers=tokens.connector(),
    )
    assert r.json == {"id": rid, "status": "matched"}
    with consent_app.app_context(), database().session() as s:
        row = s.get(LinkRequest, rid)
        assert row.attributes is None and row.answered_at is not None
        link = s.scalar(select(PatientLink).where(PatientLink.subject == SUB))
        assert (link.municipality, link.code) == (CITY, "PSEUDO-HANAKO")
    assert (
        client.get(f"/api/v1/municipalities/{CITY}/link-requests", headers=tokens.connector()).json[
            "requests"
        ]
        == []
    )
    linked = client.get(f"/api/v1/subjects/{SUB}/patients", headers=tokens.phr).json["patients"]
    assert [(p["municipality"], p["code"], p["relationship"]) for p in linked] == [
        (CITY, "PSEUDO-HANAKO", "self")
    ]
    assert _codes(client, tokens, "mch") == ["PSEUDO-HANAKO"]
    assert _codes(client, tokens, "vaccination") == ["PSEUDO-HANAKO"]
    assert _codes(client, tokens, "immunization") == ["PSEUDO-HANAKO"]  # the connector's word
    assert _codes(client, tokens, "claims") == []

    # Answering again is a conflict; the city's consent may be widened without a new request.
    again = client.post(
        f"/api/v1/municipalities/{CITY}/link-requests/{rid}",
        json={"code": "X"},
        headers=tokens.connector(),
    )
    assert again.status_code == 409 and again.json["error"] == "conflict"
    wider = _consent(client, tokens, ["mch", "vaccination", "claims"], attributes=None)
    assert wider["linked"] is True and wider["link_request"] is None
    assert wider["consent"]["id"] == made["consent"]["id"] and wider["consent"]["version"] == 2
    assert _codes(client, tokens, "claims") == ["PSEUDO-HANAKO"]

    # Withdrawing stops future extraction at once; the link (for already loaded data) stays.
    r = client.post(
        f"/api/v1/subjects/{SUB}/municipalities/{CITY}/consent/withdraw", headers=tokens.idp
    )
    assert r.json["withdrawn"] == [made["consent"]["id"]]
    for category in ("mch", "vaccination", "claims"):
        assert _codes(client, tokens, category) == []
    assert client.get(f"/api/v1/subjects/{SUB}/patients", headers=tokens.phr).json["patients"]


def test_no_match_deletes_the_attributes(
    client: FlaskClient, tokens: Tokens, consent_app: Flask
) -> None:
    rid = _consent(client, tokens, ["mch"])["link_request"]
    r = client.post(
        f"/api/v1/municipalities/{CITY}/link-requests/{rid}",
        json={"status": "no_match"},
        headers=tokens.connector(),
    )
    assert r.json == {"id": rid, "status": "no_match"}
    with consent_app.app_context(), database().session() as s:
        assert s.get(LinkRequest, rid).attributes is None
        assert s.scalar(select(PatientLink)) is None
    assert _codes(client, tokens, "mch") == []


def test_withdrawing_a_pending_consent_deletes_the_attributes(
    client: FlaskClient, tokens: Tokens, consent_app: Flask
) -> None:
    rid = _consent(client, tokens, ["mch"])["link_request"]
    client.post(
        f"/api/v1/subjects/{SUB}/municipalities/{CITY}/consent/withdraw", headers=tokens.idp
    )
    with consent_app.app_context(), database().session() as s:
        row = s.get(LinkRequest, rid)
        assert (row.status, row.attributes) == ("withdrawn", None)


def test_connector_tokens_are_bound_to_their_city(client: FlaskClient, tokens: Tokens) -> None:
    rid = _consent(client, tokens, ["mch"])["link_request"]
    other_city = tokens.connector("132012")
    for url in (
        f"/api/v1/municipalities/{CITY}/link-requests",
        f"/api/v1/municipalities/{CITY}/consents?category=mch",
    ):
        r = client.get(url, headers=other_city)
        assert r.status_code == 403 and r.json["error"] == "insufficient_scope"
        assert client.get(url, headers=tokens.idp).status_code == 403
    r = client.post(
        f"/api/v1/municipalities/{CITY}/link-requests/{rid}",
        json={"code": "X"},
        headers=other_city,
    )
    assert r.status_code == 403
    # The other city's own path does not reach this city's request either.
    r = client.post(
        f"/api/v1/municipalities/132012/link-requests/{rid}", json={"code": "X"}, headers=other_city
    )
    assert r.status_code == 404
    r = client.get(
        f"/api/v1/municipalities/{CITY}/consents?category=genome", headers=tokens.connector()
    )
    assert r.status_code == 400 and r.json["error"] == "invalid_request"


def test_consent_needs_attributes_and_a_participating_city(
    client: FlaskClient, tokens: Tokens
) -> None:
    r = client.post(
        f"/api/v1/subjects/{SUB}/municipalities/{CITY}/consent",
        json={"categories": ["mch"], "attributes": {"name": "x"}},
        headers=tokens.idp,
    )
    assert r.status_code == 400 and "birthdate" in r.json["error_description"]
    r = client.post(
        f"/api/v1/subjects/{SUB}/municipalities/999999/consent",
        json={"categories": ["mch"], "attributes": ATTRIBUTES},
        headers=tokens.idp,
    )
    assert r.status_code == 400


def test_categories_are_kept_apart(client: FlaskClient, tokens: Tokens) -> None:
    link_city(client, tokens, "sub-a", "CODE-A", categories=("vaccination",))
    link_city(client, tokens, "sub-b", "CODE-B", categories=("mch", "claims"))
    assert _codes(client, tokens, "vaccination") == ["CODE-A"]
    assert _codes(client, tokens, "mch") == ["CODE-B"]
    assert _codes(client, tokens, "claims") == ["CODE-B"]
    assert _codes(client, tokens, "checkup") == []


def test_forgetting_a_person(client: FlaskClient, tokens: Tokens, consent_app: Flask) -> None:
    child = {"code": "CODE-KID", "birthdate": "2024-01-01", "relationship": "mother"}
    cid = link_city(client, tokens, SUB, "CODE-SELF", children=[child])
    gid = client.post(
        "/api/v1/grants",
        json={"subject": SUB, "client_id": "app", "scopes": ["patient/*.rs"]},
        headers=tokens.idp,
    ).json["id"]
    assert len(_codes(client, tokens, "mch")) == 2
    assert (
        len(client.get(f"/api/v1/subjects/{SUB}/patients", headers=tokens.phr).json["patients"])
        == 2
    )

    r = client.post(f"/api/v1/subjects/{SUB}/forget", headers=tokens.idp)
    assert r.status_code == 200
    assert r.json["unlinked"] == [{"municipality": CITY, "code": "CODE-SELF"}]
    assert set(r.json["withdrawn"]) >= {cid, gid} and len(r.json["withdrawn"]) == 3
    assert client.get(f"/api/v1/subjects/{SUB}/patients", headers=tokens.phr).json["patients"] == []
    assert client.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "revoked"
    assert _codes(client, tokens, "mch") == []
    # The consent trail stays.
    history = client.get(f"/api/v1/consents/{cid}/history", headers=tokens.idp).json["versions"]
    assert [v["event"] for v in history] == ["consent_given", "consent_withdrawn"]
    with consent_app.app_context(), database().session() as s:
        assert s.scalar(select(PatientLink)) is None


def test_an_undecryptable_request_does_not_block_the_city(
    client: FlaskClient, tokens: Tokens, consent_app: Flask
) -> None:
    first = _consent(client, tokens, ["mch"])["link_request"]
    r = client.post(
        f"/api/v1/subjects/other-sub/municipalities/{CITY}/consent",
        json={"categories": ["mch"], "attributes": ATTRIBUTES},
        headers=tokens.idp,
    )
    second = r.json["link_request"]
    with consent_app.app_context(), database().session() as s:
        # Sealed under another request's id: authentication fails, as after a key change.
        s.get(LinkRequest, first).attributes = s.get(LinkRequest, second).attributes
    pending = client.get(f"/api/v1/municipalities/{CITY}/link-requests", headers=tokens.connector())
    assert [r["id"] for r in pending.json["requests"]] == [second]
