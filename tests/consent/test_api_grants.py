"""The grant API the IdP writes and the PHR server reads, and its bearer-token checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from consent import records
from consent.api.grants import grant_status
from phr_core.webapp import database
from tests.consent.conftest import Tokens

SUB = "phr-sub-mother-1"


def _grant(client: FlaskClient, tokens: Tokens, **over: object) -> dict:
    body = {
        "subject": SUB,
        "client_id": "growth-app",
        "client_name": "すくすく成長アプリ",
        "scopes": ["patient/Immunization.rs", "patient/Observation.rs"],
        "categories": ["vaccination", "checkup"],
        "purpose": "お子さんの予防接種と成長の記録を表示するため",
        "expires_at": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
    } | over
    r = client.post("/api/v1/grants", json=body, headers=tokens.idp)
    assert r.status_code == 201, r.json
    return r.json


def test_grant_is_recorded_read_listed_and_revoked_at_once(
    client: FlaskClient, tokens: Tokens
) -> None:
    created = _grant(client, tokens)
    gid = created["id"]
    assert created["status"] == "active"

    r = client.get(f"/api/v1/grants/{gid}", headers=tokens.phr)
    assert r.status_code == 200
    doc = r.json
    assert {k: doc[k] for k in ("id", "status", "subject", "client_id")} == {
        "id": gid,
        "status": "active",
        "subject": SUB,
        "client_id": "growth-app",
    }
    assert doc["scopes"] == ["patient/Immunization.rs", "patient/Observation.rs"]
    assert doc["expires_at"].endswith("Z")
    assert r.headers["Cache-Control"] == "no-store"

    # The IdP asks what this client already has, so it does not ask again.
    listed = client.get(
        f"/api/v1/subjects/{SUB}/grants?client_id=growth-app", headers=tokens.idp
    ).json["grants"]
    assert [g["id"] for g in listed] == [gid]
    assert (
        client.get(f"/api/v1/subjects/{SUB}/grants?client_id=other-app", headers=tokens.idp).json[
            "grants"
        ]
        == []
    )

    r = client.post(f"/api/v1/grants/{gid}/revoke", json={"reason": "portal"}, headers=tokens.idp)
    assert r.status_code == 200 and r.json["status"] == "revoked"
    # Seen by the PHR server's next question, though the active answer was cached a moment ago.
    assert client.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "revoked"
    assert (
        client.get(f"/api/v1/subjects/{SUB}/grants?client_id=growth-app", headers=tokens.idp).json[
            "grants"
        ]
        == []
    )
    every = client.get(f"/api/v1/subjects/{SUB}/grants?status=all", headers=tokens.idp).json
    assert [g["status"] for g in every["grants"]] == ["revoked"]
    # Revoking twice is harmless and adds no version.
    assert client.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp).status_code == 200
    history = client.get(f"/api/v1/consents/{gid}/history", headers=tokens.idp).json["versions"]
    assert [(v["version"], v["status"], v["event"]) for v in history] == [
        (1, "active", "consent_given"),
        (2, "revoked", "consent_withdrawn"),
    ]


def test_grant_without_expiry_lasts_a_year_and_expires(
    client: FlaskClient, tokens: Tokens, consent_app: Flask
) -> None:
    created = _grant(client, tokens, expires_at=None)
    end = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=364) < end - datetime.now(UTC) <= timedelta(days=365)
    with consent_app.app_context():
        later = end + timedelta(seconds=1)
        assert grant_status(created["id"], now=later)["status"] == "expired"
        assert grant_status(created["id"])["status"] == "active"


def test_unknown_grant_and_city_consents_are_not_grants(
    client: FlaskClient, tokens: Tokens
) -> None:
    r = client.get("/api/v1/grants/00000000-0000-0000-0000-000000000000", headers=tokens.phr)
    assert r.status_code == 404
    assert r.json["error"] == "not_found"
    assert client.post("/api/v1/grants/nope/revoke", headers=tokens.idp).status_code == 404
    assert client.get("/api/v1/nowhere", headers=tokens.idp).json["error"] == "not_found"


def test_bad_grant_requests_are_invalid_request(client: FlaskClient, tokens: Tokens) -> None:
    cases = [
        {"subject": SUB, "client_id": "a", "scopes": []},
        {"subject": "", "client_id": "a", "scopes": ["openid"]},
        {"subject": SUB, "client_id": "a", "scopes": ["x"], "categories": ["genome"]},
        {"subject": SUB, "client_id": "a", "scopes": ["x"], "expires_at": "2001-01-01T00:00:00Z"},
        {"subject": SUB, "client_id": "a", "scopes": ["x"], "expires_at": "tomorrow"},
    ]
    for body in cases:
        r = client.post("/api/v1/grants", json=body, headers=tokens.idp)
        assert r.status_code == 400, body
        assert r.json["error"] == "invalid_request"
    r = client.post("/api/v1/grants", data="[]", headers=tokens.idp)
    assert r.status_code == 400


def test_tokens_are_checked(client: FlaskClient, tokens: Tokens) -> None:
    gid = _grant(client, tokens)["id"]
    url = f"/api/v1/grants/{gid}"

    r = client.get(url)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="phr-consent"'

    for bad in (
        "not-a-jwt",
        tokens.mint("consent/grants.read", audience="http://127.0.0.1:1/elsewhere"),
        tokens.mint("consent/grants.read", issuer="http://127.0.0.1:1/other-issuer"),
        tokens.mint("consent/grants.read", expires_in=-120),
        tokens.mint("consent/grants.read", seal_secret="another-" + "k" * 40),
    ):
        r = client.get(url, headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
        assert r.json["error"] == "invalid_token"
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]

    # The IdP seals tokens for resource servers; a bare signed JWT is opened as well.
    plain = tokens.mint("consent/grants.read", sealed=False)
    assert client.get(url, headers={"Authorization": f"Bearer {plain}"}).status_code == 200

    # Valid token, wrong scope: the PHR server may read grants but not write them.
    r = client.post(f"{url}/revoke", headers=tokens.phr)
    assert r.status_code == 403
    assert r.json["error"] == "insufficient_scope"
    assert 'scope="consent/grants.write"' in r.headers["WWW-Authenticate"]
    r = client.get(f"/api/v1/subjects/{SUB}/patients", headers=tokens.idp)
    assert r.status_code == 403
    # A connector token cannot read grants.
    assert client.get(url, headers=tokens.connector()).status_code == 403


def test_history_keeps_every_version(
    client: FlaskClient, tokens: Tokens, consent_app: Flask
) -> None:
    gid = _grant(client, tokens)["id"]
    client.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp)
    with consent_app.app_context(), database().session() as s:
        first, second = records.history(s, gid)
        assert (first.version, first.status, first.scopes) == (
            1,
            "active",
            ["patient/Immunization.rs", "patient/Observation.rs"],
        )
        assert (second.version, second.status, second.recorded_by) == (2, "inactive", "idp")
    old = client.get(f"/api/v1/consents/{gid}?version=1", headers=tokens.idp).json
    assert old["status"] == "active" and old["version"] == 1


def test_overlong_subjects_are_invalid_requests(client: FlaskClient, tokens: Tokens) -> None:
    r = client.get(f"/api/v1/subjects/{'x' * 300}/patients", headers=tokens.phr)
    assert r.status_code == 400 and r.json["error"] == "invalid_request"
