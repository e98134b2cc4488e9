"""Access history people can read: the portal's own reads (the person opening their pages,
3–4 per visit) are folded into one collapsed item per run, the history can be narrowed by
app, child and period, and the words are plain (no "仮名化された識別子"). Against the real
platform (the demo family), on both databases, and in Chromium at 360 px and desktop width."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
import requests

from phr_server.demo_family import CHILD_ID as CHILD
from tests.browser import browser_page
from tests.portal import live_platform
from tests.portal.live_platform import (
    PARENT,
    TIMEOUT,
    Platform,
    sign_in,
    sign_in_page,
)

ITEM = r'<li class="card access" id="access-([^"]+)"'

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def _rows(html: str) -> list[tuple[str, str]]:
    """(who, what) of each access listed."""
    return re.findall(
        r'<dd class="access-who">([^<]*)</dd>.*?<dd class="access-what">([^<]*)</dd>', html, re.S
    )


def _history(browser: requests.Session, p: Platform, **query: str) -> str:
    resp = browser.get(p.portal + "/me/history?" + urlencode(query), timeout=TIMEOUT)
    assert resp.status_code == 200
    return resp.text


def test_own_reads_folded_filters_and_plain_words(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p)
    for path in (f"/me/records/{CHILD}", f"/me/children/{CHILD}/vaccinations", "/me/children"):
        assert browser.get(p.portal + path, timeout=TIMEOUT).status_code == 200
    html = _history(browser, p)
    assert "仮名化" not in html
    # Every read so far is the portal's own: one folded, collapsed item holding them all.
    assert html.count('<li class="card access-own"><details>') == 1
    assert "このポータルであなたが見た記録（" in html
    everything = re.findall(ITEM, html)
    assert len(everything) >= 5

    # (each visit to the history reads the person's Patients too: the history grows as we look)
    portal = p.settings.option("PHR_CONSENT_CLIENT_ID")
    mine = _rows(_history(browser, p, app=portal))
    assert len(mine) >= 5 and {who for who, _ in mine} == {"このポータル"}
    assert len(_rows(_history(browser, p, period="7"))) >= len(everything)
    assert len(_rows(_history(browser, p, app="no-such-app"))) >= len(everything)  # ignored
    child = _rows(_history(browser, p, child=CHILD))
    assert child and all("お子さん" in what for _, what in child)
    assert any("お子さん" not in what for _, what in _rows(_history(browser, p)))
    # A filter that matches nothing on the page says so, and the page links keep the filter.
    city = re.search(r'<option value="(connector-[^"]+)"', html)
    assert city
    none = _history(browser, p, app=city.group(1))
    assert 'id="no-match"' in none and not re.findall(ITEM, none)
    english = _history(browser, p, lang="en")
    assert "Your own views in this portal (" in english and "Filter" in english


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width,height", [(360, 740), (1280, 800)])
def test_history_on_a_phone_and_a_desktop(platform: Platform, width: int, height: int) -> None:
    p = platform
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": width, "height": height})
        sign_in_page(page, p, f"/me/records/{CHILD}", PARENT)
        page.goto(p.portal + "/me/history")
        own = page.locator("#history > .access-own").first
        assert own.is_visible()
        assert not own.locator(".access").first.is_visible()  # collapsed
        own.locator("summary").click()
        assert own.locator(".access").first.is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.select_option("select[name=period]", "7")
        page.get_by_role("button", name="絞り込む").click()
        page.wait_for_url("**/me/history?*period=7*")
        assert page.locator("select[name=period]").input_value() == "7"
        assert page.locator("#history .access").count() >= 1
        assert "仮名化" not in page.locator("main").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
