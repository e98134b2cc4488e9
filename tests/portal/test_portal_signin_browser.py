"""Portal sign-in through the real pages in headless Chromium on a phone-sized screen: the
portal's sign-in button, the IdP's development sign-in and consent screen, back to the portal's
signed-in home, "who can see my data" with an app's grant, and its revoke button."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.browser import browser_page
from tests.portal.test_portal_signin import (  # noqa: F401
    APP,
    APP_REDIRECT,
    APP_SCOPE,
    Platform,
    _pkce,
    environ,
    platform,
)

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"  # git-ignored (/var/)


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_sign_in_on_a_phone(platform: Platform) -> None:  # noqa: F811
    p = platform
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})
        page.goto(p.portal + "/")
        page.click("#sign-in")
        page.wait_for_url(p.idp + "/login*")
        page.fill("#person", "3")
        page.click("#dev-login button[type=submit]")
        # The portal is the platform's own first-party client: no consent screen for it.
        page.wait_for_url(p.portal + "/*")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.locator("#sign-out").inner_text() == "サインアウト"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.click("#apps-link")
        page.wait_for_url(p.portal + "/me/apps")
        assert page.locator("h1#apps-heading").inner_text() == "データを見られる相手"
        assert page.locator("#no-apps").is_visible()

        # An app is granted access in the same browser (its redirect answered by the test).
        page.route(APP_REDIRECT + "*", lambda route: route.fulfill(body="app", status=200))
        _, challenge = _pkce()
        query = {
            "response_type": "code",
            "client_id": APP,
            "redirect_uri": APP_REDIRECT,
            "scope": APP_SCOPE,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        page.goto(p.idp + "/authorize?" + urlencode(query))
        page.wait_for_url(p.idp + "/consent*")
        page.click("#allow")
        page.wait_for_url(APP_REDIRECT + "*")
        page.goto(p.portal + "/me/apps")
        assert page.locator(".app-name").inner_text() == "テスト日記アプリ"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(SHOTS / "portal-apps-360.png"), full_page=True)
        page.get_by_role("button", name="テスト日記アプリへの同意を取り消す").click()
        page.wait_for_url(p.portal + "/me/apps?revoked=1")
        assert page.locator("#revoked-notice").inner_text() == "同意を取り消しました。"
        assert page.locator(".app-grant").count() == 0
        assert page.locator("#no-apps").is_visible()
        page.click("#sign-out")
        page.wait_for_url(p.portal + "/*")
        assert page.locator("#sign-in").is_visible()
