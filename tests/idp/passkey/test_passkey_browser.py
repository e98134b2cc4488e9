"""The phone path in real headless Chromium with a virtual authenticator (CDP WebAuthn
domain: ctap2, internal transport, resident keys, user verification): a staff member signs in
at the counter and issues a code → the person, on a phone-sized page, opens the QR code's
link and registers a passkey → the person signs in to a client with it through the real
authorization flow → the client's ID token carries the passkey acr and amr.

The IdP is served as http://localhost:PORT: a secure context for Chromium, and a host name
as the WebAuthn rp id (Chromium refuses IP addresses such as 127.0.0.1 there)."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from idp.context import ACR_PASSKEY
from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.idp.card.conftest import ALICE
from tests.idp.card.test_cli_sign import serve_on_issuer_port
from tests.idp.conftest import code_request, exchange, pkce_pair
from tests.idp.passkey.conftest import REDIRECT, STAFF_LOGIN, STAFF_PASSWORD, PasskeyIdp

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}


def add_virtual_authenticator(context, page) -> tuple[object, str]:  # type: ignore[no-untyped-def]
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    made = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, made["authenticatorId"]


@pytest.mark.browser
def test_counter_code_passkey_enrollment_and_sign_in(pk: PasskeyIdp, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    person = pk.enroll_with_card(ALICE)
    pk.add_staff()
    rp = pk.register_client()
    base = pk.issuer
    assert base.startswith("http://localhost:")
    with serve_on_issuer_port(pk.app, pk.env.settings.ports["idp"]), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            # 1. At the counter: staff sign in and issue a code for the person.
            counter = browser.new_context(locale="ja-JP").new_page()
            counter.goto(f"{base}/staff/")
            assert urlsplit(counter.url).path == "/staff/login"
            counter.fill("#login", STAFF_LOGIN)
            counter.fill("#password", STAFF_PASSWORD)
            counter.click("button[type=submit]")
            counter.wait_for_url(f"{base}/staff/?lang=ja")
            counter.fill("#name", ALICE.name)
            counter.fill("#birthdate", ALICE.birthdate)
            counter.check("input[name=confirmed]")
            counter.click("form[action^='/staff/codes'] button[type=submit]")
            code = counter.locator("#enrollment-code").inner_text()
            assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code)
            assert counter.locator(".code-qr svg").count() == 1

            # 2. On the phone: the QR code's link, the code filled in, a passkey registered.
            context = browser.new_context(locale="ja-JP", **PHONE)
            phone = context.new_page()
            cdp, authenticator_id = add_virtual_authenticator(context, phone)
            phone.goto(f"{base}/passkey/enroll#code={code}")
            assert phone.input_value("#code") == code
            assert "#code" not in phone.url  # the code leaves the address bar
            phone.screenshot(path=str(tmp_path / "enroll.png"))
            phone.click("#passkey-enroll button[type=submit]")
            phone.locator("#passkey-enroll.passkey-done").wait_for(timeout=15_000)
            assert "パスキーを登録しました" in phone.locator(".passkey-message").inner_text()
            stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
            assert len(stored["credentials"]) == 1
            assert stored["credentials"][0]["isResidentCredential"]

            # 3. Later: sign in to the client with the passkey, through /authorize.
            verifier, challenge = pkce_pair()
            params = code_request(rp, challenge)
            captured: list[str] = []

            def client_callback(route) -> None:  # type: ignore[no-untyped-def]
                captured.append(route.request.url)
                route.fulfill(status=200, body="ok", content_type="text/plain")

            context.route(REDIRECT + "*", client_callback)
            phone.goto(f"{base}/authorize?{urlencode(params)}")
            assert urlsplit(phone.url).path == "/login"
            button = phone.locator("#passkey-login button")
            assert button.inner_text() == "パスキーでサインイン"
            assert phone.evaluate("document.documentElement.scrollWidth") <= 360
            phone.screenshot(path=str(tmp_path / "login.png"), full_page=True)
            button.click()
            phone.wait_for_url(re.compile(r".*/consent\?.*"), timeout=15_000)
            phone.click("button[value=allow]")
            phone.wait_for_url(REDIRECT + "*", timeout=15_000)
        finally:
            browser.close()
    assert captured, "the client's redirect URI was never reached"
    back = parse_qs(urlsplit(captured[-1]).query)
    assert back["state"] == [params["state"]]
    resp = exchange(pk.app, rp, back["code"][0], verifier)
    assert resp.status_code == 200, resp.get_json()
    payload = resp.get_json()["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["acr"] == ACR_PASSKEY
    assert claims["amr"] == ["hwk", "user"]  # the virtual authenticator's key is device-bound
    assert claims["nonce"] == params["nonce"]
    assert person not in json.dumps(claims)
