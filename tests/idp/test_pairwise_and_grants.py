"""Pairwise subjects across sectors, the PHR sector shared by platform clients, the client
credentials grant, introspection, revocation, PAR and private_key_jwt."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey

from idp.subjects import PHR_SECTOR
from tests.idp.conftest import (
    OTHER_REDIRECT,
    Browser,
    basic,
    code_request,
    exchange,
    pkce_pair,
    token_claims,
)


def _claims(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def _flow(app: Flask, rp: dict, browser: Browser, scope: str = "openid") -> dict:
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge, scope=scope))
    resp = exchange(app, rp, back["code"][0], verifier)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_sectors_get_different_stable_subjects(idp_app: Flask, register) -> None:
    a = register("app-a")
    b = register("app-b", redirect_uris=[OTHER_REDIRECT])
    a2 = register("app-a2")  # same redirect host as app-a: same sector
    person1 = Browser(idp_app.test_client(), person=1)
    sub_a = _claims(_flow(idp_app, a, person1)["id_token"])["sub"]
    sub_b = _claims(_flow(idp_app, b, person1)["id_token"])["sub"]
    sub_a2 = _claims(_flow(idp_app, a2, person1)["id_token"])["sub"]
    assert sub_a != sub_b
    assert sub_a == sub_a2
    again = Browser(idp_app.test_client(), person=1)  # a new sign-in, another day
    assert _claims(_flow(idp_app, a, again)["id_token"])["sub"] == sub_a
    person2 = Browser(idp_app.test_client(), person=2)
    assert _claims(_flow(idp_app, a, person2)["id_token"])["sub"] != sub_a


def test_access_tokens_carry_the_phr_sector_subject(idp_app: Flask, register) -> None:
    """Apps in different sectors see different ID-token subjects, but the PHR server sees one
    subject for the person in every access token, and the PHR-sector clients share it."""
    a = register("app-a")
    b = register("app-b", redirect_uris=[OTHER_REDIRECT])
    portal = register(
        "portal", redirect_uris=["https://portal.example.jp/cb"], phr_sector=PHR_SECTOR
    )
    browser = Browser(idp_app.test_client(), person=3)
    scope = "openid patient/Immunization.rs"
    ta = _flow(idp_app, a, browser, scope)
    tb = _flow(idp_app, b, browser, scope)
    tp = _flow(idp_app, portal, browser, scope)
    # Sealed: the app cannot read the PHR-sector subject in its own access token.
    assert all(t["access_token"].count(".") == 4 for t in (ta, tb, tp))
    at_subs = {token_claims(idp_app, t["access_token"])["sub"] for t in (ta, tb, tp)}
    assert len(at_subs) == 1
    phr_sub = at_subs.pop()
    assert _claims(tp["id_token"])["sub"] == phr_sub  # the portal is in the PHR sector
    assert phr_sub not in {_claims(ta["id_token"])["sub"], _claims(tb["id_token"])["sub"]}
    at = token_claims(idp_app, ta["access_token"])
    assert at["aud"] == idp_app.extensions["idp"].settings.urls["fhir"]
    assert at["client_id"] == "app-a" and at["grant_id"] and at["scope"] == scope


def test_client_credentials_and_introspection(idp_app: Flask, register) -> None:
    conn = register(
        "connector-x",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="system/*.write consent/linkage",
        phr_sector=PHR_SECTOR,
        phr_municipality="072028",
        phr_resource_urls=[idp_app.extensions["idp"].settings.urls["fhir"]],
    )
    c = idp_app.test_client()
    auth = basic("connector-x", conn["client_secret"])
    resp = c.post("/token", data={"grant_type": "client_credentials", "scope": "system/*.write"},
                  headers=auth)  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "refresh_token" not in body and "id_token" not in body
    claims = token_claims(idp_app, body["access_token"])
    assert claims["sub"] == "connector-x" and claims["municipality"] == "072028"
    # Scopes of two resource servers need one token each (RFC 8707 `resource`).
    both = c.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    assert both.status_code == 400 and both.get_json()["error"] == "invalid_target"
    consent_url = idp_app.extensions["idp"].settings.urls["consent"]
    one = c.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "consent/linkage",
            "resource": consent_url,
        },
        headers=auth,
    )
    assert token_claims(idp_app, one.get_json()["access_token"])["aud"] == consent_url
    bad = c.post("/token", data={"grant_type": "client_credentials", "scope": "patient/*.rs"},
                 headers=auth)  # fmt: skip
    assert bad.get_json()["error"] == "invalid_scope"

    intro = c.post("/introspect", data={"token": body["access_token"]}, headers=auth).get_json()
    assert intro["active"] is True and intro["scope"] == "system/*.write"
    assert intro["municipality"] == "072028"
    assert c.post("/revoke", data={"token": body["access_token"]}, headers=auth).status_code == 200
    intro = c.post("/introspect", data={"token": body["access_token"]}, headers=auth).get_json()
    assert intro == {"active": False}


def test_public_client_cannot_use_client_credentials_or_introspect(
    idp_app: Flask, register, browser: Browser
) -> None:
    with pytest.raises(ValueError):
        register("pub-cc", secret=None, grant_types=["client_credentials"], redirect_uris=[])
    app = register("pub", secret=None)
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(app, challenge, scope="openid offline_access"))
    c = idp_app.test_client()
    body = c.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": "pub",
            "code": back["code"][0],
            "redirect_uri": app["redirect_uris"][0],
            "code_verifier": verifier,
        },
    ).get_json()
    assert "refresh_token" in body
    intro = c.post("/introspect", data={"token": body["access_token"], "client_id": "pub"})
    assert intro.status_code == 401
    # A public client may revoke its own refresh token with its client_id alone (RFC 7009).
    assert (
        c.post("/revoke", data={"token": body["refresh_token"], "client_id": "pub"}).status_code
        == 200
    )
    again = c.post("/token", data={"grant_type": "refresh_token", "client_id": "pub",
                                   "refresh_token": body["refresh_token"]})  # fmt: skip
    assert again.get_json()["error"] == "invalid_grant"


def test_pushed_authorization_request(idp_app: Flask, register, browser: Browser) -> None:
    rp = register()
    _, challenge = pkce_pair()
    c = idp_app.test_client()
    params = code_request(rp, challenge)
    pushed = c.post("/par", data=params, headers=basic("rp-1", rp["client_secret"]))
    assert pushed.status_code == 201, pushed.get_json()
    uri = pushed.get_json()["request_uri"]
    assert uri.startswith("urn:ietf:params:oauth:request_uri:")
    back = browser.authorize(client_id="rp-1", request_uri=uri)
    assert "code" in back and back["state"] == [params["state"]]
    # Single use.
    resp = browser.client.get("/authorize", query_string={"client_id": "rp-1", "request_uri": uri})
    assert resp.status_code == 400
    # Bad pushed requests are refused as JSON at the push, not later.
    bad = c.post("/par", data={**params, "code_challenge_method": "plain"},
                 headers=basic("rp-1", rp["client_secret"]))  # fmt: skip
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_request"
    unauth = c.post("/par", data=params, headers=basic("rp-1", "wrong"))
    assert unauth.status_code == 401


def test_private_key_jwt(idp_app: Flask, register) -> None:
    key = ECKey.generate_key("P-256")
    public = {**key.as_dict(private=False), "kid": "k1", "alg": "ES256", "use": "sig"}
    register(
        "pkjwt",
        secret=None,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public]},
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="system/*.write",
    )
    token_url = idp_app.extensions["idp"].endpoint("/token")

    def assertion(**over) -> str:
        now = int(time.time())
        claims = {"iss": "pkjwt", "sub": "pkjwt", "aud": token_url, "iat": now,
                  "exp": now + 60, "jti": str(uuid.uuid4()), **over}  # fmt: skip
        return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)

    def token(a: str):
        return idp_app.test_client().post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": a,
            },
        )

    assert token(assertion()).status_code == 200
    assert token(assertion(aud="https://elsewhere.example/token")).status_code == 401
    assert token(assertion(exp=int(time.time()) - 120)).status_code == 401
    other = ECKey.generate_key("P-256")
    forged = jwt.encode({"alg": "ES256", "kid": "k1"}, _claims(assertion()), other)
    assert token(forged).status_code == 401


def test_first_party_portal_signs_in_without_a_grant(idp_app: Flask, register) -> None:
    """The platform's portal (PHR sector, `openid` only) is not asked about; an app is."""
    portal = register("portal", redirect_uris=["https://portal.example.jp/cb"],
                      phr_sector=PHR_SECTOR, phr_first_party=True, scope="openid")  # fmt: skip
    pretender = register("pretender", phr_first_party=True)  # not in the PHR sector: ignored
    browser = Browser(idp_app.test_client(), person=5)
    body = _flow(idp_app, portal, browser)
    assert browser.pages == ["/login"]  # signed in, no consent screen
    assert "grant_id" not in token_claims(idp_app, body["access_token"])
    _flow(idp_app, pretender, browser)
    assert browser.pages == ["/login", "/consent"]


PORTAL_READ = "openid offline_access user/*.rs"


def test_first_party_portal_reads_for_the_person_and_nobody_else_can_claim_it(
    idp_app: Flask, register
) -> None:
    """The portal's access token for the PHR server is marked first-party (no grant): sealed,
    for the PHR server, with the PHR-sector subject. No other client gets the mark: not one
    outside the PHR sector, not one with a write scope, not an app with a grant, and dynamic
    registration cannot set `phr_first_party` at all."""
    from idp.scopes import is_first_party_scope

    assert all(map(is_first_party_scope, PORTAL_READ.split()))
    assert is_first_party_scope("user/Observation.read") and is_first_party_scope("user/*.s")
    for scope in ("user/*.cruds", "user/*.write", "user/*.*", "patient/*.rs", "system/*.rs",
                  "consent/grants.write", "user/*."):  # fmt: skip
        assert not is_first_party_scope(scope), scope

    portal = register("portal", redirect_uris=["https://portal.example.jp/cb"],
                      phr_sector=PHR_SECTOR, phr_first_party=True, scope=PORTAL_READ)  # fmt: skip
    browser = Browser(idp_app.test_client(), person=6)
    body = _flow(idp_app, portal, browser, scope=PORTAL_READ)
    assert browser.pages == ["/login"]
    assert body["access_token"].count(".") == 4  # sealed: the portal cannot read it
    claims = token_claims(idp_app, body["access_token"])
    assert claims["phr_first_party"] is True and "grant_id" not in claims
    assert claims["aud"] == idp_app.extensions["idp"].audience("fhir")
    portal_sub = claims["sub"]
    # A refresh keeps the mark.
    again = idp_app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=basic(portal["client_id"], portal["client_secret"]),
    )
    assert again.status_code == 200, again.get_json()
    assert token_claims(idp_app, again.get_json()["access_token"])["phr_first_party"] is True

    # Others asking for the same are refused: `user/` scopes are the portal's alone (issue 14,
    # item 3), so no other client gets them, let alone the mark.
    for client_id, meta in (
        ("outsider", {"phr_first_party": True, "scope": PORTAL_READ}),  # not in the PHR sector
        (
            "writer",
            {
                "phr_first_party": True,
                "phr_sector": PHR_SECTOR,
                "scope": PORTAL_READ + " user/*.cruds",
            },
        ),
        ("plain-app", {"scope": PORTAL_READ}),
    ):
        rp = register(client_id, **meta)
        b = Browser(idp_app.test_client(), person=6)
        _, challenge = pkce_pair()
        back = b.authorize(**code_request(rp, challenge, scope=PORTAL_READ))
        assert back["error"] == ["invalid_scope"] and "code" not in back, client_id
        assert "'user/*.rs'" in back["error_description"][0], client_id
        assert b.pages == [], client_id
        # With patient/ scopes instead: a consent screen, a grant, and no mark.
        rp = register(client_id, **{**meta, "scope": "openid offline_access patient/*.rs"})
        got = _flow(idp_app, rp, b, scope="openid offline_access patient/*.rs")
        assert b.pages == ["/login", "/consent"], client_id
        c = token_claims(idp_app, got["access_token"])
        assert "phr_first_party" not in c and c.get("grant_id"), client_id
        assert c["sub"] == portal_sub  # the same person at the PHR server, but with a grant

    # Dynamic registration never takes the field (it is for operators only).
    from idp.endpoints.registration import STATIC_ONLY

    assert "phr_first_party" in STATIC_ONLY
