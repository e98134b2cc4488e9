"""The whole story for a third-party app, in headless Chromium on a phone-sized screen: the
sandbox platform and the example app on loopback; the demo parent signs in with her virtual
My Number card (`phr card sign` with the code the page shows), picks her child on the consent
screen, the app shows the child's next vaccinations and growth; she revokes the app in the
portal, and the app's next request ends on the "access was withdrawn" page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.apps.conftest import APP_NAME, Sandbox, card_sign
from tests.browser import browser_page

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "apps"  # git-ignored


def _fits(page: object) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # type: ignore[attr-defined]


def test_example_app_story(sandbox: Sandbox) -> None:
    sb = sandbox
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})  # type: ignore[attr-defined]
        page.goto(sb.app + "/")  # type: ignore[attr-defined]
        _fits(page)
        page.click("#sign-in")  # type: ignore[attr-defined]
        page.wait_for_url(sb.idp + "/login*")  # type: ignore[attr-defined]
        code = page.locator(".card-code code").inner_text()  # type: ignore[attr-defined]
        page.screenshot(path=str(SHOTS / "1-card-sign-in.png"), full_page=True)  # type: ignore[attr-defined]
        card_sign(sb, code)

        # The consent screen: the app's name and purpose, and whose record it may open.
        page.wait_for_url(sb.idp + "/consent*", timeout=20_000)  # type: ignore[attr-defined]
        assert APP_NAME in page.locator("body").inner_text()  # type: ignore[attr-defined]
        labels = page.locator("#patient label")  # type: ignore[attr-defined]
        texts = labels.all_inner_texts()
        index = next(i for i, t in enumerate(texts) if "お子さん" in t)
        labels.nth(index).locator("input").check()
        _fits(page)
        page.screenshot(path=str(SHOTS / "2-consent.png"), full_page=True)  # type: ignore[attr-defined]
        page.click("#allow")  # type: ignore[attr-defined]

        # The app shows the child's schedule and growth from the PHR server.
        page.wait_for_url(sb.app + "/", timeout=20_000)  # type: ignore[attr-defined]
        page.locator("#next-doses").wait_for()  # type: ignore[attr-defined]
        rows = page.locator("#next-doses tr.dose")  # type: ignore[attr-defined]
        vaccines = [rows.nth(i).get_attribute("data-vaccine") for i in range(rows.count())]
        # Just over a year old with the infant series done: MR and varicella are due now, the
        # finished series (hepatitis B, BCG) are not listed.
        assert "Measles-rubella (MR)" in vaccines
        assert "Varicella" in vaccines
        assert "Hepatitis B" not in vaccines and "BCG" not in vaccines
        mr = page.locator("tr.dose[data-vaccine='Measles-rubella (MR)'] td.due")  # type: ignore[attr-defined]
        assert mr.inner_text().startswith("接種できます")
        growth = page.locator("#growth tr.measure").all_inner_texts()  # type: ignore[attr-defined]
        assert len(growth) == 3
        assert any("体重" in g and "kg" in g for g in growth)
        _fits(page)
        page.screenshot(path=str(SHOTS / "3-app-child.png"), full_page=True)  # type: ignore[attr-defined]

        # The parent revokes the app in the portal ("who can see my data").
        page.goto(sb.portal + "/")  # type: ignore[attr-defined]
        page.click("#sign-in")  # type: ignore[attr-defined]
        page.wait_for_url(sb.portal + "/*", timeout=20_000)  # type: ignore[attr-defined]
        if page.locator("#sign-out").count() == 0:  # type: ignore[attr-defined]
            pytest.fail("the portal did not sign in with the IdP session")
        page.goto(sb.portal + "/me/apps")  # type: ignore[attr-defined]
        page.get_by_role("button", name=f"{APP_NAME}への同意を取り消す").click()  # type: ignore[attr-defined]
        page.wait_for_url(sb.portal + "/me/apps?revoked=1")  # type: ignore[attr-defined]
        assert page.locator("#revoked-notice").inner_text() == "同意を取り消しました。"  # type: ignore[attr-defined]

        # The PHR server asks the consent service again within 5 s; then the app's next request
        # is refused and the app says so instead of failing.
        time.sleep(6)
        page.goto(sb.app + "/")  # type: ignore[attr-defined]
        notice = page.locator("#withdrawn")  # type: ignore[attr-defined]
        assert notice.is_visible()
        assert "アクセスが取り消されました" in notice.inner_text()
        assert "Access was withdrawn" in notice.inner_text()
        assert page.locator("#next-doses").count() == 0  # type: ignore[attr-defined]
        _fits(page)
        page.screenshot(path=str(SHOTS / "4-withdrawn.png"), full_page=True)  # type: ignore[attr-defined]
