"""Automatic registration at the IdP (OpenID Federation 1.0 section 12.1): an app known only
to the federation signs a citizen in; a removed app, a revoked trust mark, a policy violation
or a request object not signed by the app is refused."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from joserfc import jwt

from federation import jose, trust_marks
from federation.authority import store
from idp.app import create_app, prepare
from phr_core import migrations
from phr_core.config import load_settings
from phr_core.services import get_service
from tests.federation.conftest import Federation, LeafEntity, new_key
from tests.idp.conftest import Browser, pkce_pair, token_claims

SCOPE = "openid patient/Immunization.rs"


@pytest.fixture
def idp_app(federation: Federation) -> Iterator[Flask]:
    settings = load_settings({**federation.settings.environ, "PHR_IDP_GRANT_STORE": "local"})
    migrations.upgrade(get_service("idp"), settings.database_urls["idp"])
    prepare(settings)
    app = create_app(settings)
    app.config["TESTING"] = True
    app.extensions["idp_federation_resolver"] = federation.resolver(check_trust_mark_status=True)
    federation.fetcher.mount(settings.issuer, app)
    yield app
    app.extensions["phr_db"].dispose()


def certified_app(federation: Federation) -> LeafEntity:
    """An app registered with the anchor and holding the 'certified PHR app' mark."""
    app = federation.leaf()
    federation.add_subordinate(
        federation.anchor, app.entity_id, app.jwks, entity_types=["openid_relying_party"]
    )
    with federation.anchor.extensions["phr_db"].session() as s:
        store.record_mark(s, trust_marks.CERTIFIED_PHR_APP, app.entity_id, 3600)
    mark = federation.anchor.test_client().get(
        "/trust_mark",
        query_string={"trust_mark_type": trust_marks.CERTIFIED_PHR_APP, "sub": app.entity_id},
    )
    app.trust_marks = [
        {
            "trust_mark_type": trust_marks.CERTIFIED_PHR_APP,
            "trust_mark": mark.get_data(as_text=True),
        }
    ]
    return app


def request_object(app: LeafEntity, issuer: str, challenge: str, **over: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": app.entity_id,
        "aud": issuer,
        "client_id": app.entity_id,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(12),
        "response_type": "code",
        "redirect_uri": app.entity_id + "/callback",
        "scope": SCOPE,
        "state": "s-" + secrets.token_urlsafe(6),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **over,
    }
    key = over.pop("_key", None) or app.key
    claims.pop("_key", None)
    return jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "oauth-authz-req+jwt"}, claims, key)


def authorize_params(app: LeafEntity, token: str) -> dict[str, str]:
    return {"client_id": app.entity_id, "request": token, "response_type": "code", "scope": SCOPE}


def client_assertion(app: LeafEntity, issuer: str, aud: str | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": app.entity_id,
        "sub": app.entity_id,
        "aud": aud or issuer + "/token",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode({"alg": "ES256", "kid": app.key.kid}, claims, app.key)


def test_app_known_only_to_the_federation_signs_a_citizen_in(
    federation: Federation, idp_app: Flask
) -> None:
    app = certified_app(federation)
    issuer = idp_app.extensions["idp"].issuer
    verifier, challenge = pkce_pair()
    browser = Browser(idp_app.test_client())

    back = browser.authorize(**authorize_params(app, request_object(app, issuer, challenge)))

    assert browser.pages == ["/login", "/consent"]
    assert "code" in back, back
    resp = idp_app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": back["code"][0],
            "redirect_uri": app.entity_id + "/callback",
            "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(app, issuer),
        },
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    id_token = jwt.decode(body["id_token"], idp_app.extensions["idp"].keys.verification_keys())
    assert id_token.claims["aud"] == app.entity_id
    assert token_claims(idp_app, body["access_token"])["client_id"] == app.entity_id

    from idp.models import Client

    with idp_app.extensions["phr_db"].session() as s:
        row = s.get(Client, app.entity_id)
        assert row.registration == "federation"
        meta = row.client_metadata
        assert meta["subject_type"] == "pairwise"  # the anchor's policy, applied
        assert meta["phr_federation_exp"] <= int(time.time()) + 3600


def refusal(idp_app: Flask, params: dict[str, str]) -> str:
    resp = idp_app.test_client().get("/authorize", query_string=params)
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    return resp.get_data(as_text=True)


def test_removed_app_is_refused_at_once(federation: Federation, idp_app: Flask) -> None:
    app = certified_app(federation)
    issuer = idp_app.extensions["idp"].issuer
    _, challenge = pkce_pair()
    ok = idp_app.test_client().get(
        "/authorize", query_string=authorize_params(app, request_object(app, issuer, challenge))
    )
    assert ok.status_code == 302
    federation.remove_subordinate(federation.anchor, app.entity_id)
    page = refusal(idp_app, authorize_params(app, request_object(app, issuer, challenge)))
    assert "not_found" in page


def test_revoked_trust_mark_is_refused_at_once(federation: Federation, idp_app: Flask) -> None:
    app = certified_app(federation)
    with federation.anchor.extensions["phr_db"].session() as s:
        store.revoke_marks(s, app.entity_id, trust_marks.CERTIFIED_PHR_APP)
    _, challenge = pkce_pair()
    issuer = idp_app.extensions["idp"].issuer
    page = refusal(idp_app, authorize_params(app, request_object(app, issuer, challenge)))
    assert "trust mark" in page


def test_policy_violation_is_refused(federation: Federation, idp_app: Flask) -> None:
    app = certified_app(federation)
    app.metadata["openid_relying_party"]["subject_type"] = "public"
    app.metadata["openid_relying_party"]["token_endpoint_auth_method"] = "none"
    _, challenge = pkce_pair()
    issuer = idp_app.extensions["idp"].issuer
    page = refusal(idp_app, authorize_params(app, request_object(app, issuer, challenge)))
    assert "metadata_policy_violation" in page


def test_request_object_not_signed_by_the_app_is_refused(
    federation: Federation, idp_app: Flask
) -> None:
    app = certified_app(federation)
    issuer = idp_app.extensions["idp"].issuer
    _, challenge = pkce_pair()
    forged = request_object(app, issuer, challenge, _key=new_key())
    assert "not signed with the app" in refusal(idp_app, authorize_params(app, forged))
    for_other = request_object(app, "https://other-idp.example.jp", challenge)
    assert "another provider" in refusal(idp_app, authorize_params(app, for_other))


def test_app_not_in_the_federation_is_refused(federation: Federation, idp_app: Flask) -> None:
    app = federation.leaf()  # publishes a configuration, but no authority vouches for it
    _, challenge = pkce_pair()
    issuer = idp_app.extensions["idp"].issuer
    page = refusal(idp_app, authorize_params(app, request_object(app, issuer, challenge)))
    assert "not_found" in page


def test_registration_ends_when_the_chain_expires(federation: Federation, idp_app: Flask) -> None:
    from idp.clients import get_client
    from idp.models import Client

    app = certified_app(federation)
    _, challenge = pkce_pair()
    issuer = idp_app.extensions["idp"].issuer
    idp_app.test_client().get(
        "/authorize", query_string=authorize_params(app, request_object(app, issuer, challenge))
    )
    with idp_app.extensions["phr_db"].session() as s:
        assert get_client(s, app.entity_id) is not None
        row = s.get(Client, app.entity_id)
        row.client_metadata = {**row.client_metadata, "phr_federation_exp": int(time.time()) - 1}
    with idp_app.extensions["phr_db"].session() as s:
        assert get_client(s, app.entity_id) is None


def test_idp_publishes_its_entity_configuration(federation: Federation, idp_app: Flask) -> None:
    from federation.entity import statement

    settings = idp_app.extensions["phr_settings"]
    resp = idp_app.test_client().get("/.well-known/openid-federation")
    assert resp.mimetype == statement.MEDIA_TYPE
    ec = statement.parse(resp.get_data(as_text=True), what="idp")
    jose.verify(ec.jwt, ec.jwks, statement.TYP, what="idp")
    assert ec.sub == settings.issuer
    assert ec.authority_hints == [federation.anchor_id]
    op = ec.metadata["openid_provider"]
    assert op["client_registration_types_supported"] == ["automatic"]
    assert op["issuer"] == settings.issuer


def test_app_known_only_to_the_federation_can_push_its_request(
    federation: Federation, idp_app: Flask
) -> None:
    app = certified_app(federation)
    issuer = idp_app.extensions["idp"].issuer
    _, challenge = pkce_pair()
    pushed = idp_app.test_client().post(
        "/par",
        data={
            "client_id": app.entity_id,
            "response_type": "code",
            "redirect_uri": app.entity_id + "/callback",
            "scope": SCOPE,
            "state": "par-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(app, issuer, aud=issuer),
        },
    )
    assert pushed.status_code == 201, pushed.get_json()
    browser = Browser(idp_app.test_client())
    back = browser.authorize(client_id=app.entity_id, request_uri=pushed.get_json()["request_uri"])
    assert back["state"] == ["par-state"] and "code" in back


def test_push_from_an_app_outside_the_federation_is_invalid_client(
    federation: Federation, idp_app: Flask
) -> None:
    app = federation.leaf()  # nobody vouches for it
    issuer = idp_app.extensions["idp"].issuer
    _, challenge = pkce_pair()
    pushed = idp_app.test_client().post(
        "/par",
        data={
            "client_id": app.entity_id,
            "response_type": "code",
            "redirect_uri": app.entity_id + "/callback",
            "scope": SCOPE,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(app, issuer, aud=issuer),
        },
    )
    assert pushed.status_code == 401
    body = pushed.get_json()
    assert body["error"] == "invalid_client" and "not_found" in body["error_description"]


def test_a_request_object_is_used_once(federation: Federation, idp_app: Flask) -> None:
    app = certified_app(federation)
    issuer = idp_app.extensions["idp"].issuer
    _, challenge = pkce_pair()
    params = authorize_params(app, request_object(app, issuer, challenge))
    assert idp_app.test_client().get("/authorize", query_string=params).status_code == 302
    assert "already used" in refusal(idp_app, params)


def test_a_static_client_with_a_url_client_id_is_left_alone(
    federation: Federation, idp_app: Flask
) -> None:
    from idp.clients import upsert_static

    client_id = "https://static-app.example.jp"
    with idp_app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": client_id,
                "redirect_uris": ["https://static-app.example.jp/cb"],
                "scope": "openid",
            },
            "static-secret-" + "x" * 30,
        )
    _, challenge = pkce_pair()
    resp = idp_app.test_client().get(
        "/authorize",
        query_string={
            "client_id": client_id,
            "request": "a.b.c",
            "response_type": "code",
            "redirect_uri": "https://static-app.example.jp/cb",
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert resp.status_code == 302
    assert "error=request_not_supported" in resp.headers["Location"]
    assert not federation.fetcher.requests  # nothing was fetched for it
