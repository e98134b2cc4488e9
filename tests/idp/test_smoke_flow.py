"""The code flow end to end through the Flask test client."""

from __future__ import annotations

from flask import Flask

from tests.idp.conftest import Browser, code_request, exchange, pkce_pair


def test_full_code_flow(idp_app: Flask, register, browser: Browser) -> None:
    rp = register()
    verifier, challenge = pkce_pair()
    params = code_request(rp, challenge, scope="openid offline_access patient/Immunization.rs")
    back = browser.authorize(**params)
    assert back["state"] == [params["state"]]
    assert back["iss"] == [idp_app.extensions["idp"].issuer]
    assert browser.pages == ["/login", "/consent"]
    resp = exchange(idp_app, rp, back["code"][0], verifier)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= set(body)
