"""The OpenID Foundation's Basic OP test plan (OIDCCBasicTestPlan, 38 modules), one test per
module, named after it, with the module's assertions. The hosted suite cannot run here (no
Docker, no internet), so these replicate it against the real IdP app."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import timedelta

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update

from idp.models import LoginSession
from idp.tokens import now_utc
from tests.idp.conftest import Browser, basic, code_request, pkce_pair


@pytest.fixture
def rp(register) -> dict:
    return register()


def _token(app: Flask, rp: dict, code: str, verifier: str, *, post_auth: bool = False):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": rp["redirect_uris"][0],
        "code_verifier": verifier,
    }
    headers = {}
    if post_auth:
        data.update(client_id=rp["client_id"], client_secret=rp["client_secret"])
    else:
        headers = basic(rp["client_id"], rp["client_secret"])
    return app.test_client().post("/token", data=data, headers=headers)


def _login(app: Flask, rp: dict, browser: Browser, **extra: str) -> tuple[dict, dict]:
    """A complete code flow; returns (token response, the authorization request)."""
    verifier, challenge = pkce_pair()
    req = code_request(rp, challenge, **extra)
    back = browser.authorize(**req)
    assert "code" in back, back
    assert back["state"] == [req["state"]]
    resp = _token(app, rp, back["code"][0], verifier)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json(), req


def _id_claims(app: Flask, token: str) -> tuple[dict, dict]:
    keys = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256"])
    return decoded.header, decoded.claims


def _check_id_token(app: Flask, rp: dict, body: dict, nonce: str | None) -> dict:
    header, c = _id_claims(app, body["id_token"])
    issuer = app.extensions["idp"].issuer
    assert header["alg"] in ("ES256", "RS256") and header["kid"]
    assert c["iss"] == issuer and c["aud"] == rp["client_id"]
    now = time.time()
    assert c["iat"] <= now + 5 and c["exp"] > now
    assert c["sub"] and len(c["sub"]) == 43
    assert c.get("nonce") == nonce
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert c["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return c


def _auth_error(browser: Browser, rp: dict, **params: str) -> dict:
    _, challenge = pkce_pair()
    req = code_request(rp, challenge)
    req.update(params)
    req = {k: v for k, v in req.items() if v is not None}
    return browser.authorize(**req)


# --- Core ------------------------------------------------------------------------------------


def test_oidcc_server(idp_app: Flask, rp: dict, browser: Browser) -> None:
    body, req = _login(idp_app, rp, browser)
    assert body["token_type"] == "Bearer"
    _check_id_token(idp_app, rp, body, req["nonce"])


def test_oidcc_response_type_missing(idp_app: Flask, rp: dict, browser: Browser) -> None:
    back = _auth_error(browser, rp, response_type=None)
    assert back["error"] == ["unsupported_response_type"]
    assert back["iss"] == [idp_app.extensions["idp"].issuer]


def test_oidcc_idtoken_signature(idp_app: Flask, rp: dict, browser: Browser) -> None:
    body, _ = _login(idp_app, rp, browser)
    header, _claims = _id_claims(idp_app, body["id_token"])  # raises if the signature is bad
    jwks = idp_app.test_client().get("/jwks").get_json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}


def test_oidcc_idtoken_unsigned(idp_app: Flask, register, rp: dict, browser: Browser) -> None:
    """We never issue `alg: none`: a client cannot register for it, and tokens are signed."""
    with pytest.raises(ValueError, match="id_token_signed_response_alg"):
        register("rp-none", id_token_signed_response_alg="none")
    meta = idp_app.test_client().get("/.well-known/openid-configuration").get_json()
    assert "none" not in meta["id_token_signing_alg_values_supported"]
    body, _ = _login(idp_app, rp, browser)
    header = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "ES256"


# --- UserInfo --------------------------------------------------------------------------------


def _userinfo_sub(app: Flask, body: dict, how: str) -> str:
    c = app.test_client()
    at = body["access_token"]
    if how == "get":
        resp = c.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
    elif how == "post-header":
        resp = c.post("/userinfo", headers={"Authorization": f"Bearer {at}"})
    else:
        resp = c.post("/userinfo", data={"access_token": at})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["sub"]


@pytest.mark.parametrize("how", ["get", "post-header", "post-body"])
def test_oidcc_userinfo(idp_app: Flask, rp: dict, browser: Browser, how: str) -> None:
    """Modules oidcc-userinfo-get, -post-header, -post-body: sub equals the ID token's."""
    body, _ = _login(idp_app, rp, browser)
    _, claims = _id_claims(idp_app, body["id_token"])
    assert _userinfo_sub(idp_app, body, how) == claims["sub"]


# --- Nonce, scopes ---------------------------------------------------------------------------


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(
    idp_app: Flask, rp: dict, browser: Browser
) -> None:
    verifier, challenge = pkce_pair()
    req = code_request(rp, challenge)
    del req["nonce"]
    back = browser.authorize(**req)
    body = _token(idp_app, rp, back["code"][0], verifier).get_json()
    _check_id_token(idp_app, rp, body, None)


@pytest.mark.parametrize(
    "scope",
    ["openid profile", "openid email", "openid address", "openid phone",
     "openid profile email address phone"],
    ids=["profile", "email", "address", "phone", "all"],
)  # fmt: skip
def test_oidcc_scope(idp_app: Flask, rp: dict, browser: Browser, scope: str) -> None:
    """Modules oidcc-scope-profile/-email/-address/-phone/-all: the claim scopes are not
    supported (apps never get names or addresses), so they are ignored, not refused, and
    nothing but `sub` is released."""
    body, _ = _login(idp_app, rp, browser, scope=scope)
    assert body["scope"] == "openid"
    _, claims = _id_claims(idp_app, body["id_token"])
    assert not {"name", "email", "address", "phone_number", "birthdate"} & set(claims)
    info = idp_app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}
    )
    assert set(info.get_json()) == {"sub"}


def test_oidcc_ensure_other_scope_order_succeeds(
    idp_app: Flask, rp: dict, browser: Browser
) -> None:
    body, _ = _login(idp_app, rp, browser, scope="patient/Immunization.rs openid")
    assert set(body["scope"].split()) == {"openid", "patient/Immunization.rs"}


# --- Display, prompt, max_age ----------------------------------------------------------------


@pytest.mark.parametrize("display", ["page", "popup"])
def test_oidcc_display(idp_app: Flask, rp: dict, browser: Browser, display: str) -> None:
    body, _ = _login(idp_app, rp, browser, display=display)
    assert "id_token" in body


def test_oidcc_prompt_login(idp_app: Flask, rp: dict, browser: Browser) -> None:
    first, _ = _login(idp_app, rp, browser)
    time.sleep(1.1)
    second, _ = _login(idp_app, rp, browser, prompt="login")
    assert browser.pages.count("/login") == 2  # asked to sign in again
    _, c1 = _id_claims(idp_app, first["id_token"])
    _, c2 = _id_claims(idp_app, second["id_token"])
    assert c2["auth_time"] > c1["auth_time"] and c1["sub"] == c2["sub"]


def test_oidcc_prompt_none_not_logged_in(idp_app: Flask, rp: dict, browser: Browser) -> None:
    back = _auth_error(browser, rp, prompt="none")
    assert back["error"] == ["login_required"]
    assert "code" not in back


def test_oidcc_prompt_none_logged_in(idp_app: Flask, rp: dict, browser: Browser) -> None:
    first, _ = _login(idp_app, rp, browser)
    pages = len(browser.pages)
    second, _ = _login(idp_app, rp, browser, prompt="none")
    assert len(browser.pages) == pages  # no page shown
    sub1 = _id_claims(idp_app, first["id_token"])[1]["sub"]
    assert _id_claims(idp_app, second["id_token"])[1]["sub"] == sub1


def _age_session(app: Flask, seconds: int) -> None:
    with app.extensions["phr_db"].session() as s:
        s.execute(update(LoginSession).values(auth_time=now_utc() - timedelta(seconds=seconds)))


def test_oidcc_max_age_1(idp_app: Flask, rp: dict, browser: Browser) -> None:
    _login(idp_app, rp, browser)
    _age_session(idp_app, 5)  # the sign-in is now older than max_age
    before = int(time.time())
    body, _ = _login(idp_app, rp, browser, max_age="1")
    assert browser.pages.count("/login") == 2
    _, c = _id_claims(idp_app, body["id_token"])
    assert before <= c["auth_time"] <= time.time()  # the new sign-in's, not the aged one


def test_oidcc_max_age_10000(idp_app: Flask, rp: dict, browser: Browser) -> None:
    _login(idp_app, rp, browser)
    body, _ = _login(idp_app, rp, browser, max_age="10000")
    assert browser.pages.count("/login") == 1
    assert "auth_time" in _id_claims(idp_app, body["id_token"])[1]


# --- Request parameters ----------------------------------------------------------------------


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(
    idp_app: Flask, rp: dict, browser: Browser
) -> None:
    body, _ = _login(idp_app, rp, browser, extra_unknown_param="ignored")
    assert "id_token" in body


def test_oidcc_id_token_hint(idp_app: Flask, rp: dict, browser: Browser) -> None:
    first, _ = _login(idp_app, rp, browser)
    second, _ = _login(idp_app, rp, browser, prompt="none", id_token_hint=first["id_token"])
    sub1 = _id_claims(idp_app, first["id_token"])[1]["sub"]
    assert _id_claims(idp_app, second["id_token"])[1]["sub"] == sub1
    other = Browser(idp_app.test_client(), person=2)
    _login(idp_app, rp, other)
    # Person 2's browser, hinting at person 1: never silently the wrong person.
    back = _auth_error(other, rp, prompt="none", id_token_hint=first["id_token"])
    assert back["error"] == ["login_required"]


def test_oidcc_login_hint(idp_app: Flask, rp: dict, browser: Browser) -> None:
    body, _ = _login(idp_app, rp, browser, login_hint="someone@example.jp")
    assert "id_token" in body


def test_oidcc_ui_locales(idp_app: Flask, rp: dict) -> None:
    _, challenge = pkce_pair()
    c = idp_app.test_client()
    for locale, text in (
        ("en", "Sign in to use"),
        ("ja", "サインインします"),
        ("fr-FR en", "Sign in to use"),
    ):
        resp = c.get("/authorize", query_string=code_request(rp, challenge, ui_locales=locale))
        page = c.get(resp.headers["Location"])
        assert text in page.get_data(as_text=True), locale


def test_oidcc_claims_locales(idp_app: Flask, rp: dict, browser: Browser) -> None:
    body, _ = _login(idp_app, rp, browser, claims_locales="ja")
    assert "id_token" in body


def test_oidcc_ensure_request_with_acr_values_succeeds(
    idp_app: Flask, rp: dict, browser: Browser
) -> None:
    body, _ = _login(idp_app, rp, browser, acr_values="urn:phr:acr:dev unknown-acr")
    assert _id_claims(idp_app, body["id_token"])[1]["acr"] == "urn:phr:acr:dev"


# --- Codes, redirect URIs, client auth -------------------------------------------------------


def test_oidcc_codereuse(idp_app: Flask, rp: dict, browser: Browser) -> None:
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge))
    assert _token(idp_app, rp, back["code"][0], verifier).status_code == 200
    again = _token(idp_app, rp, back["code"][0], verifier)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_oidcc_codereuse_30seconds(idp_app: Flask, rp: dict, browser: Browser) -> None:
    """A reused code revokes the tokens issued with it (RFC 6749 4.1.2)."""
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge, scope="openid offline_access"))
    body = _token(idp_app, rp, back["code"][0], verifier).get_json()
    assert _token(idp_app, rp, back["code"][0], verifier).status_code == 400
    c = idp_app.test_client()
    info = c.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 401
    refresh = c.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=basic(rp["client_id"], rp["client_secret"]),
    )
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"


def test_oidcc_ensure_registered_redirect_uri(idp_app: Flask, rp: dict) -> None:
    _, challenge = pkce_pair()
    req = code_request(rp, challenge, redirect_uri="https://attacker.example/cb")
    resp = idp_app.test_client().get("/authorize", query_string=req)
    assert resp.status_code == 400  # a page, never a redirect to an unregistered URI
    assert "Location" not in resp.headers
    assert "redirect_uri is not registered" in resp.get_data(as_text=True)


def test_oidcc_server_client_secret_post(idp_app: Flask, register, browser: Browser) -> None:
    rp = register("rp-post", token_endpoint_auth_method="client_secret_post")
    verifier, challenge = pkce_pair()
    req = code_request(rp, challenge)
    req_nonce = req["nonce"]
    back = browser.authorize(**req)
    resp = _token(idp_app, rp, back["code"][0], verifier, post_auth=True)
    assert resp.status_code == 200
    _check_id_token(idp_app, rp, resp.get_json(), req_nonce)
    # Basic is refused for a client registered for client_secret_post.
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge))
    assert _token(idp_app, rp, back["code"][0], verifier).status_code == 401


# --- Request objects and the rest ------------------------------------------------------------


def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    browser: Browser, rp: dict
) -> None:
    unsigned = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."
    back = _auth_error(browser, rp, request=unsigned)
    assert back["error"] == ["request_not_supported"]


def test_oidcc_request_uri_unsigned(browser: Browser, rp: dict) -> None:
    """request_uri values we did not issue (PAR) are refused without redirecting."""
    _, challenge = pkce_pair()
    req = code_request(rp, challenge, request_uri="https://rp.example.jp/request.jwt")
    resp = browser.client.get("/authorize", query_string=req)
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_oidcc_claims_essential(idp_app: Flask, rp: dict, browser: Browser) -> None:
    claims = json.dumps({"userinfo": {"name": {"essential": True}}})
    body, _ = _login(idp_app, rp, browser, claims=claims)
    info = idp_app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}
    )
    assert set(info.get_json()) == {"sub"}  # no name is ever released


def test_oidcc_ensure_request_object_with_redirect_uri(browser: Browser, rp: dict) -> None:
    back = _auth_error(browser, rp, request="eyJhbGciOiJub25lIn0.eyJyZWRpcmVjdF91cmkiOiJ4In0.")
    assert back["error"] == ["request_not_supported"]


def test_oidcc_refresh_token(idp_app: Flask, rp: dict, browser: Browser) -> None:
    body, _ = _login(idp_app, rp, browser, scope="openid offline_access")
    c = idp_app.test_client()
    auth = basic(rp["client_id"], rp["client_secret"])
    resp = c.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=auth,
    )
    assert resp.status_code == 200, resp.get_json()
    fresh = resp.get_json()
    assert fresh["refresh_token"] != body["refresh_token"]
    sub = _id_claims(idp_app, body["id_token"])[1]["sub"]
    assert _id_claims(idp_app, fresh["id_token"])[1]["sub"] == sub


def test_oidcc_ensure_request_with_valid_pkce_succeeds(
    idp_app: Flask, rp: dict, browser: Browser
) -> None:
    body, _ = _login(idp_app, rp, browser)
    assert "access_token" in body


def test_oidcc_ensure_post_request_succeeds(idp_app: Flask, rp: dict, browser: Browser) -> None:
    _, challenge = pkce_pair()
    req = code_request(rp, challenge)
    resp = browser.client.post("/authorize", data=req)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?")
