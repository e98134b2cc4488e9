"""The "+ services" pages in headless Chromium on a 360×740 phone screen, against the real
platform (IdP, consent service, PHR server on loopback, the demo family loaded): sign in as the
demo parent through the IdP's development sign-in, the child's records, growth chart and
vaccination schedule, then an app is granted access, reads the child's vaccinations, and its
reads appear in the access history. Screenshots go to var/screenshots/ (git-ignored)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from phr_server.demo_family import CHILD_ID as CHILD
from tests.browser import browser_page
from tests.portal import live_platform
from tests.portal.live_platform import PARENT, TIMEOUT, Platform, app_tokens, sign_in_page

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
APP = "demo-vaccination-app"
APP_REDIRECT = "http://127.0.0.1:8010/callback"
APP_SCOPE = "openid launch/patient patient/Immunization.rs patient/Patient.rs"


environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def _fits(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_records_growth_schedule_and_history_on_a_phone(platform: Platform) -> None:
    p = platform
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})
        sign_in_page(page, p, "/auth/login?next=/", PARENT, land="/")

        page.click("#records-link")
        page.wait_for_url(p.portal + "/me/children")
        assert page.locator("#children .child").count() == 1
        _fits(page)
        page.screenshot(path=str(SHOTS / "portal-children-360.png"), full_page=True)

        page.click("#children .child >> text=記録")
        page.wait_for_url(p.portal + f"/me/records/{CHILD}")
        assert page.locator("#observations tbody tr").count() == 18
        assert page.locator("#immunizations tbody tr").count() == 14
        assert page.get_by_role("heading", name="予防接種").is_visible()
        _fits(page)
        page.screenshot(path=str(SHOTS / "portal-records-360.png"), full_page=True)

        page.goto(p.portal + "/me/children")
        page.click("#children .growth-link")
        page.wait_for_url(p.portal + f"/me/children/{CHILD}/growth")
        chart = page.get_by_role("img", name="体重（kg）の成長曲線")
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] <= 360 and box["height"] > 150
        assert page.locator("#growth-weight .child-point").count() == 6
        assert page.locator("#growth-weight .chart-source").text_content().startswith("出典：")
        assert page.locator("#growth-weight table.measurements tbody tr").count() == 6
        _fits(page)
        page.screenshot(path=str(SHOTS / "portal-growth-360.png"), full_page=True)

        page.click("text=予防接種の予定")
        page.wait_for_url(p.portal + f"/me/children/{CHILD}/vaccinations")
        page.locator("#finished summary").click()  # finished doses are collapsed
        assert "済み" in page.locator("#dose-HepB-1").inner_text()
        assert "接種できます" in page.locator("#dose-VZV-1").inner_text()
        assert "まだです" in page.locator("#dose-MR-2").inner_text()
        _fits(page)
        page.screenshot(path=str(SHOTS / "portal-vaccinations-360.png"), full_page=True)

        # An app is granted access in this browser and reads the child's vaccinations.
        page.route(APP_REDIRECT + "*", lambda route: route.fulfill(body="app", status=200))
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        query = {"response_type": "code", "client_id": APP, "redirect_uri": APP_REDIRECT,
                 "scope": APP_SCOPE, "state": "s", "code_challenge": challenge,
                 "code_challenge_method": "S256"}  # fmt: skip
        page.goto(p.idp + "/authorize?" + urlencode(query))
        page.wait_for_url(p.idp + "/consent*")
        page.check(f"input[name=patient][value='{CHILD}']")  # whose record the app opens
        page.click("#allow")
        page.wait_for_url(APP_REDIRECT + "*")
        tokens = app_tokens(p, APP, APP_REDIRECT, page.url, verifier)
        read = requests.get(
            p.fhir + "/Immunization",
            headers={"Authorization": "Bearer " + tokens["access_token"]},
            timeout=TIMEOUT,
        )
        assert read.status_code == 200 and len(read.json()["entry"]) == 14

        page.goto(p.portal + "/")
        page.click("#history-link")
        page.wait_for_url(p.portal + "/me/history")
        newest = page.locator("#history > .access").first  # the portal's own reads are folded
        assert "予防接種スケジュール（デモアプリ）" in newest.locator(".access-who").inner_text()
        assert "予防接種の記録（14）" in newest.locator(".access-what").inner_text()
        assert "お子さん" in newest.locator(".access-what").inner_text()
        _fits(page)
        page.screenshot(path=str(SHOTS / "portal-history-360.png"), full_page=True)
        # The portal's own reads of this session are listed too (paging: test_portal_plus_pages).
        assert page.locator("#history .access-who", has_text="このポータル").count() >= 5

        page.goto(p.portal + "/me/export")
        with page.expect_download() as info:
            page.click("#export-download")
        assert info.value.suggested_filename.startswith("phr-records-")
        _fits(page)
