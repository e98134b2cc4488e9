"""Nothing sensitive is pre-ticked: on "わたしのデータの提供元" a fresh consent form has no box
ticked (no kind of record, not the children's records), and submitting it as it is consents
to nothing. Against the real platform (a citizen with no city consent), on both databases,
and in Chromium at 360 px and at desktop width."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from consent.models import ConsentRecord
from phr_core.db import Database
from tests.browser import browser_page
from tests.portal import live_platform
from tests.portal.live_platform import (
    STRANGER,
    TIMEOUT,
    Platform,
    form_value,
    sign_in,
    sign_in_page,
)

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def _consents(p: Platform) -> int:
    db = Database(p.settings.database_urls["consent"])
    try:
        with db.session() as s:
            return len(s.scalars(select(ConsentRecord.id)).all())
    finally:
        db.dispose()


def test_a_fresh_form_ticks_nothing_and_consents_to_nothing(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p, STRANGER)
    html = browser.get(p.portal + "/me/sources", timeout=TIMEOUT).text
    boxes = re.findall(r"<input type=\"checkbox\"[^>]*>", html)
    assert len(boxes) >= 5 and not [b for b in boxes if "checked" in b], boxes
    code = re.findall(r'action="/me/sources/([^/"]+)/consent"', html)[0]
    before = _consents(p)
    none = browser.post(
        f"{p.portal}/me/sources/{code}/consent",
        data={"csrf": form_value(html, "csrf")},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert none.status_code == 400 and "一つ以上" in none.text
    assert _consents(p) == before
    after = browser.get(p.portal + "/me/sources", timeout=TIMEOUT).text
    assert f'action="/me/sources/{code}/consent"' in after  # still not consented


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width,height", [(360, 740), (1280, 800)])
def test_the_sources_page_ticks_nothing_in_a_browser(
    platform: Platform, width: int, height: int
) -> None:
    p = platform
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": width, "height": height})
        sign_in_page(page, p, "/me/sources", STRANGER)
        form = page.locator(".consent-form").first
        assert form.locator("input[type=checkbox]").count() >= 5
        assert page.locator("input[type=checkbox]:checked").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        form.locator("button.consent").click()
        assert "一つ以上" in page.locator("main").inner_text()
        page.goto(p.portal + "/me/sources")
        assert page.locator(".consent-form").count() >= 1
        assert page.locator("a.withdraw").count() == 0
