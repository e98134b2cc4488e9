"""One description of a grant, in headless Chromium at 360×740 against the real platform (IdP,
consent service and portal, PHR server on loopback, the demo family loaded): the demo app asks
for vaccinations and checkup results, the parent unticks the checkups on the consent screen,
the app's token reads vaccinations and is refused checkups, and the portal's "who can see my
data" shows the same facts in the same words as the consent screen, with vaccinations only."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from idp.demo import DEMO_APP_ID, DEMO_APP_PORT
from phr_server.demo_family import CHILD_ID as CHILD
from tests.browser import browser_page
from tests.portal import live_platform
from tests.portal.live_platform import PARENT, TIMEOUT, Platform, app_tokens

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
APP_REDIRECT = f"http://127.0.0.1:{DEMO_APP_PORT}/callback"  # answered by the test, never fetched
APP_SCOPE = "openid launch/patient patient/Immunization.rs patient/Observation.rs"
SAME = ("publisher", "purpose", "expires", "links")  # facts both pages word alike

environ = live_platform.environ
platform = live_platform.platform


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_untick_a_data_type_and_see_the_same_description(platform: Platform) -> None:
    p = platform
    SHOTS.mkdir(parents=True, exist_ok=True)
    verifier, challenge = _pkce()
    query = {"response_type": "code", "client_id": DEMO_APP_ID, "redirect_uri": APP_REDIRECT,
             "scope": APP_SCOPE, "state": "s", "code_challenge": challenge,
             "code_challenge_method": "S256"}  # fmt: skip
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})
        page.route(APP_REDIRECT + "*", lambda route: route.fulfill(body="app", status=200))
        page.goto(p.idp + "/authorize?" + urlencode(query))
        page.wait_for_url(p.idp + "/login*")
        page.fill("#person", PARENT)
        page.click("#dev-login button[type=submit]")
        page.wait_for_url(p.idp + "/consent*")

        boxes = page.get_by_role("checkbox")
        assert boxes.count() == 2 and all(boxes.nth(i).is_checked() for i in range(2))
        observation = page.locator("input[name=scope][value='patient/Observation.rs']")
        observation.uncheck()
        assert not observation.is_checked()
        page.check(f"input[name=patient][value='{CHILD}']")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(SHOTS / "idp-consent-360.png"), full_page=True)
        shown = {key: page.locator(f"#grant-{key}").inner_text().strip() for key in SAME}
        assert "まで" in shown["expires"] and "取り消すまで" not in shown["expires"]
        page.click("#allow")
        page.wait_for_url(APP_REDIRECT + "*")
        tokens = app_tokens(p, DEMO_APP_ID, APP_REDIRECT, page.url, verifier)
        assert "Observation" not in tokens["scope"] and "patient/Immunization.rs" in tokens["scope"]
        bearer = {"Authorization": "Bearer " + tokens["access_token"]}
        read = requests.get(p.fhir + "/Immunization", headers=bearer, timeout=TIMEOUT)
        assert read.status_code == 200 and read.json()["entry"]
        refused = requests.get(p.fhir + "/Observation", headers=bearer, timeout=TIMEOUT)
        assert refused.status_code == 403, refused.text

        # The portal describes the grant with the consent screen's facts and words.
        page.goto(p.portal + "/me/apps")
        page.wait_for_url(p.portal + "/me/apps")
        grant = page.locator(".app-grant").first
        for key, text in shown.items():
            assert grant.locator(f".grant-{key}").inner_text().strip() == text, key
        assert grant.locator(".grant-record").inner_text().startswith("お子さん・")
        scopes = grant.locator(".grant-data li")
        assert scopes.count() == 1
        assert scopes.first.get_attribute("data-scope") == "patient/Immunization.rs"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(SHOTS / "portal-apps-grant-360.png"), full_page=True)
