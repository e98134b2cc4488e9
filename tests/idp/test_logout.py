"""RP-initiated and back-channel logout: the session ends, the client is told with a signed
logout token carrying its own pairwise sub and the session id, and redirects go only to
registered URIs."""

from __future__ import annotations

import threading

from flask import Flask, request
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.serving import make_server

from tests.idp.conftest import Browser, code_request, exchange, pkce_pair

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def test_rp_initiated_logout_with_backchannel(idp_app: Flask, register, browser: Browser) -> None:
    received: list[str] = []
    receiver = Flask("rp-backchannel")

    @receiver.post("/backchannel")
    def backchannel() -> tuple[str, int]:
        received.append(request.form["logout_token"])
        return "", 200

    server = make_server("127.0.0.1", 0, receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rp = register(
            backchannel_logout_uri=f"http://127.0.0.1:{server.server_port}/backchannel",
            post_logout_redirect_uris=["https://rp.example.jp/bye"],
        )
        verifier, challenge = pkce_pair()
        back = browser.authorize(**code_request(rp, challenge))
        tokens = exchange(idp_app, rp, back["code"][0], verifier).get_json()

        bad = browser.client.get(
            "/logout",
            query_string={"id_token_hint": tokens["id_token"],
                          "post_logout_redirect_uri": "https://attacker.example/"},
        )  # fmt: skip
        assert bad.status_code == 400 and "Location" not in bad.headers

        resp = browser.client.get(
            "/logout",
            query_string={"id_token_hint": tokens["id_token"], "state": "s1",
                          "post_logout_redirect_uri": "https://rp.example.jp/bye"},
        )  # fmt: skip
        assert resp.status_code == 302
        assert resp.headers["Location"] == "https://rp.example.jp/bye?state=s1"
    finally:
        server.shutdown()

    assert len(received) == 1
    keys = KeySet.import_key_set(idp_app.test_client().get("/jwks").get_json())
    decoded = jwt.decode(received[0], keys)
    assert decoded.header["typ"] == "logout+jwt"
    claims = decoded.claims
    id_claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["aud"] == rp["client_id"] and claims["iss"] == id_claims["iss"]
    assert claims["sub"] == id_claims["sub"] and claims["sid"] == id_claims["sid"]
    assert BACKCHANNEL_EVENT in claims["events"] and "nonce" not in claims

    # The browser is signed out: prompt=none now needs a sign-in.
    _, challenge = pkce_pair()
    again = browser.authorize(**code_request(rp, challenge, prompt="none"))
    assert again["error"] == ["login_required"]


def test_logout_without_hint_asks_the_person(idp_app: Flask, register, browser: Browser) -> None:
    rp = register()
    _, challenge = pkce_pair()
    browser.authorize(**code_request(rp, challenge))
    page = browser.client.get("/logout")
    assert page.status_code == 200 and 'id="logout"' in page.get_data(as_text=True)
    # Still signed in until the person confirms.
    assert "code" in browser.authorize(**code_request(rp, challenge, prompt="none"))
