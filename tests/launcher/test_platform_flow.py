"""The running platform end to end (`phr dev run`, every service under gunicorn): an app signs
a citizen in at the IdP, the consent screen records the grant with the consent service, and the
PHR server accepts the app's sealed access token after asking the consent service, with its own
client-credentials token, whether the grant is active; after revocation it refuses."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from idp.app import create_app as create_idp
from phr_core.config import load_settings
from phr_core.sealing import own_key
from phr_core.tokens import access_token_cipher, unseal
from tests.dev_platform import DevPlatform
from tests.revocation import first_refusal

APP = "demo-vaccination-app"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


pytestmark = pytest.mark.slow  # a whole platform (`phr dev run`), about a minute


def _form(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert m, html[:400]
    return m.group(1)


def test_app_reads_through_the_platform_until_revoked(dev_platform: DevPlatform) -> None:
    env = dev_platform.env  # the embedded default, every service under gunicorn
    idp = f"http://127.0.0.1:{env['PHR_IDP_PORT']}"
    fhir = f"http://127.0.0.1:{env['PHR_FHIR_PORT']}"
    consent = f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}"
    meta = requests.get(f"{idp}/.well-known/openid-configuration", timeout=10).json()
    redirect_uri = "http://127.0.0.1:8010/callback"
    verifier, challenge = _pkce()
    browser = requests.Session()
    resp = browser.get(
        meta["authorization_endpoint"],
        params={
            "response_type": "code", "client_id": APP, "redirect_uri": redirect_uri,
            "scope": "openid patient/Immunization.rs", "state": "s",
            "code_challenge": challenge, "code_challenge_method": "S256",
        },
        allow_redirects=False, timeout=10,
    )  # fmt: skip
    for _ in range(6):
        location = resp.headers["Location"]
        if location.startswith(redirect_uri):
            break
        page = browser.get(idp + location if location.startswith("/") else location,
                           allow_redirects=False, timeout=10)  # fmt: skip
        if page.status_code == 302:
            resp = page
            continue
        req = parse_qs(urlsplit(location).query)["req"][0]
        if "/login" in location:
            data = {"csrf": _form(page.text, "csrf"), "req": req, "person": "4"}
            resp = browser.post(f"{idp}/login/dev", data=data, allow_redirects=False, timeout=10)
        else:
            data = {"csrf": _form(page.text, "csrf"), "req": req, "decision": "allow"}
            resp = browser.post(f"{idp}/consent", data=data, allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "authorization_code", "client_id": APP, "code": code,
              "redirect_uri": redirect_uri, "code_verifier": verifier},
        timeout=10,
    ).json()  # fmt: skip
    headers = {"Authorization": "Bearer " + tokens["access_token"]}
    search = requests.get(f"{fhir}/Immunization", headers=headers, timeout=10)
    assert search.status_code == 200, search.text
    assert search.json()["resourceType"] == "Bundle"

    # The person revokes the grant (what the portal does, here through the consent API
    # with the IdP's service token); the PHR server refuses the still-unexpired token.
    settings = load_settings({**os.environ, **env})
    # Sealed to the PHR server's own key (the federation publishes it), or under the
    # shared key by an IdP that found none: the PHR server holds both.
    keys = (
        access_token_cipher(settings.secret("PHR_ACCESS_TOKEN_KEY")),
        own_key(settings, "FHIR"),
    )
    signed = unseal(tokens["access_token"], keys)
    grant_id = json.loads(base64.urlsafe_b64decode(signed.split(".")[1] + "=="))["grant_id"]
    idp_app = create_idp(settings)
    try:
        with idp_app.app_context():
            ctx = idp_app.extensions["idp"]
            service = ctx.grants._service_token(ctx)
    finally:
        idp_app.extensions["phr_db"].dispose()
    revoked = requests.post(
        f"{consent}/api/v1/grants/{grant_id}/revoke",
        headers={"Authorization": "Bearer " + service}, json={}, timeout=10,
    )  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    # "Within seconds": the PHR server caches a grant's status for at most 5 s.
    refused = first_refusal(
        lambda: requests.get(f"{fhir}/Immunization", headers=headers, timeout=10)
    )
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
