"""DPoP (RFC 9449) for public clients: proofs at the token endpoint, tokens bound to the key,
refresh tokens usable only with it, replayed proofs refused, userinfo with the DPoP scheme."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey

from phr_core.dpop import thumbprint
from tests.idp.conftest import Browser, code_request, pkce_pair, token_claims


class Holder:
    """A phone app's DPoP key."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")
        self.public = self.key.as_dict(private=False)
        self.jkt = thumbprint(self.public)

    def proof(self, method: str, url: str, access_token: str | None = None, **over) -> str:
        claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
        if access_token:
            digest = hashlib.sha256(access_token.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        claims.update(over)
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public}
        return jwt.encode(header, claims, self.key)


@pytest.fixture
def app_client(register) -> dict:
    return register("phone-app", secret=None, dpop_bound_access_tokens=True)


def _code(browser: Browser, client: dict, **extra: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(client, challenge, **extra))
    return back["code"][0], verifier


def _token(app: Flask, client: dict, code: str, verifier: str, proof: str | None):
    headers = {"DPoP": proof} if proof else {}
    return app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": client["client_id"],
            "code": code,
            "redirect_uri": client["redirect_uris"][0],
            "code_verifier": verifier,
        },
        headers=headers,
    )


def test_dpop_bound_tokens_for_a_public_client(
    idp_app: Flask, app_client: dict, browser: Browser
) -> None:
    holder = Holder()
    token_url = idp_app.extensions["idp"].endpoint("/token")
    code, verifier = _code(browser, app_client, scope="openid offline_access",
                           dpop_jkt=holder.jkt)  # fmt: skip
    no_proof = _token(idp_app, app_client, code, verifier, None)
    assert no_proof.status_code == 400 and no_proof.get_json()["error"] == "invalid_dpop_proof"
    proof = holder.proof("POST", token_url)
    resp = _token(idp_app, app_client, code, verifier, proof)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["token_type"] == "DPoP"
    at_claims = token_claims(idp_app, body["access_token"])
    assert at_claims["cnf"] == {"jkt": holder.jkt}

    c = idp_app.test_client()
    userinfo_url = idp_app.extensions["idp"].endpoint("/userinfo")
    at = body["access_token"]
    ok = c.get("/userinfo", headers={"Authorization": f"DPoP {at}",
                                     "DPoP": holder.proof("GET", userinfo_url, at)})  # fmt: skip
    assert ok.status_code == 200, ok.get_json()
    # Presented as a plain bearer token, or with a proof from another key: refused.
    assert c.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code == 401
    thief = Holder()
    stolen = c.get("/userinfo", headers={"Authorization": f"DPoP {at}",
                                         "DPoP": thief.proof("GET", userinfo_url, at)})  # fmt: skip
    assert stolen.status_code == 401

    def refresh(h: Holder, proof: str | None = None):
        return c.post(
            "/token",
            data={"grant_type": "refresh_token", "client_id": "phone-app",
                  "refresh_token": body["refresh_token"]},
            headers={"DPoP": proof or h.proof("POST", token_url)},
        )  # fmt: skip

    assert refresh(thief).get_json()["error"] == "invalid_dpop_proof"
    assert refresh(holder).status_code == 200


def test_proof_checks(idp_app: Flask, app_client: dict, browser: Browser) -> None:
    holder = Holder()
    token_url = idp_app.extensions["idp"].endpoint("/token")
    bad_proofs = [
        holder.proof("GET", token_url),  # wrong method
        holder.proof("POST", "https://elsewhere.example/token"),  # wrong URL
        holder.proof("POST", token_url, iat=int(time.time()) - 600),  # stale
        "not.a.proof",
    ]
    for proof in bad_proofs:
        code, verifier = _code(browser, app_client)
        resp = _token(idp_app, app_client, code, verifier, proof)
        assert resp.get_json()["error"] == "invalid_dpop_proof", proof
    # A proof is good once.
    proof = holder.proof("POST", token_url)
    code, verifier = _code(browser, app_client)
    assert _token(idp_app, app_client, code, verifier, proof).status_code == 200
    code, verifier = _code(browser, app_client)
    replay = _token(idp_app, app_client, code, verifier, proof)
    assert replay.get_json()["error"] == "invalid_dpop_proof"
    # The code was bound to one key with dpop_jkt: another key cannot redeem it.
    code, verifier = _code(browser, app_client, dpop_jkt=holder.jkt)
    other = Holder().proof("POST", token_url)
    assert _token(idp_app, app_client, code, verifier, other).get_json()["error"] == (
        "invalid_dpop_proof"
    )
