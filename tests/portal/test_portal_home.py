"""The signed-in home page answers "what's next": per child the next vaccinations (overdue and
due first, with dates), the latest measurements with their percentile band, the latest
checkup, unread notices; someone who has consented for no city yet sees that step as the one
primary action. Against the real platform (the demo family), and in Chromium at 360 px and at
desktop width."""

from __future__ import annotations

import re
from datetime import date

import pytest
import requests

from portal.care import schedule as engine
from portal.home import next_doses
from tests.browser import browser_page
from tests.portal import live_platform
from tests.portal.live_platform import (
    PARENT,
    STRANGER,
    TIMEOUT,
    Platform,
    sign_in,
    sign_in_page,
)

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def _dose(status: str, number: int, when: date | None) -> engine.DoseStatus:
    return engine.DoseStatus("X", "X", "X", number, f"{number}回目", f"dose {number}", status,
                             earliest=when)  # fmt: skip


def test_overdue_then_due_then_coming_by_date() -> None:
    statuses = [
        _dose(engine.DONE, 1, None),
        _dose(engine.NOT_YET, 2, date(2027, 3, 1)),
        _dose(engine.NOT_YET, 3, date(2027, 1, 1)),
        _dose(engine.DUE, 4, date(2026, 11, 1)),
        _dose(engine.OVERDUE, 5, date(2026, 5, 1)),
        _dose(engine.CLOSED, 6, None),
    ]
    assert [s.number for s in next_doses(statuses)] == [5, 4, 3]


def test_home_says_what_is_next_for_each_child(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p)
    html = browser.get(p.portal + "/", timeout=TIMEOUT).text
    assert 'id="first-step"' not in html
    assert html.count('class="card child-next"') == 1
    assert "次に受ける接種" in html and 'class="next-doses"' in html
    dates = re.findall(
        r'<li class="next-dose (\w+)">.*?<time datetime="(\d{4}-\d\d-\d\d)"', html, re.S
    )
    assert dates, html
    assert "パーセンタイル" in html and "体重" in html
    assert re.search(r"最新の健診：\d{4}-\d\d-\d\d", html)
    english = browser.get(p.portal + "/?lang=en", timeout=TIMEOUT).text
    assert "Next vaccinations" in english and "percentile" in english

    stranger = requests.Session()
    sign_in(stranger, p, STRANGER)
    html = stranger.get(p.portal + "/?lang=ja", timeout=TIMEOUT).text
    assert 'id="first-step"' in html and 'href="/me/sources"' in html
    assert html.count("button primary") == 1  # the one primary action
    assert "child-next" not in html


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width,height", [(360, 740), (1280, 800)])
def test_home_on_a_phone_and_a_desktop(platform: Platform, width: int, height: int) -> None:
    p = platform
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": width, "height": height})
        sign_in_page(page, p, "/auth/login?next=/", PARENT, land="/")
        child = page.locator(".child-next").first
        assert child.get_by_role("heading", name="次に受ける接種").is_visible()
        assert child.locator(".next-doses li").count() >= 1
        assert child.locator(".latest-growth .band").first.inner_text().endswith("パーセンタイル")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        child.locator(".schedule-link").click()
        page.wait_for_url(p.portal + "/me/children/*/vaccinations")
