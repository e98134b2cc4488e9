"""The code flow end to end through the Flask test client."""

from __future__ import annotations

from flask import Flask

from tests.idp.conftest import Browser, basic, code_request, pkce_pair


def test_full_code_flow(idp_app: Flask, register, browser: Browser) -> None:
    rp = register()
    verifier, challenge = pkce_pair()
    params = code_request(rp, challenge, scope="openid offline_access patient/Immunization.rs")
    back = browser.authorize(**params)
    assert back["state"] == [params["state"]]
    assert back["iss"] == [idp_app.extensions["idp"].issuer]
    assert browser.pages == ["/login", "/consent"]
    resp = idp_app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": back["code"][0],
            "redirect_uri": rp["redirect_uris"][0],
            "code_verifier": verifier,
        },
        headers=basic(rp["client_id"], rp["client_secret"]),
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= set(body)
