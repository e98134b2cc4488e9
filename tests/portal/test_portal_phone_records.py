"""Records that fit a phone: at 360 px the record tables are stacked cards (each cell a line
with its column's name), never a column one character wide; at desktop width they stay
tables with no column that narrow. The vaccination schedule starts with "次に受ける接種",
then what is overdue, then what is coming, with finished doses collapsed. In Chromium against
the real platform (the demo family)."""

from __future__ import annotations

import re

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

# The narrowest cell, in widths of its own font size (~ characters of Japanese text).
NARROWEST_CELL = """() => {
  const cells = [...document.querySelectorAll('table.records td')];
  return {
    cells: cells.length,
    narrowest: Math.min(...cells.map(c => c.getBoundingClientRect().width
                                        / parseFloat(getComputedStyle(c).fontSize))),
    stacked: cells.every(c => getComputedStyle(c.parentElement).display === 'block'),
  };
}"""

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def test_schedule_starts_with_what_is_next(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p)
    html = browser.get(f"{p.portal}/me/children/{CHILD}/vaccinations", timeout=TIMEOUT).text
    order = [m for m in ("next-doses", "overdue", "upcoming", "finished") if f'id="{m}"' in html]
    assert order[0] == "next-doses" and order[-1] == "finished" and "upcoming" in order
    assert order == sorted(order, key=lambda m: html.index(f'id="{m}"'))
    assert "次に受ける接種" in html and '<details class="card" id="finished">' in html
    finished = html[html.index('id="finished"') :]
    coming = html[html.index('id="next-doses"') : html.index('id="finished"')]
    assert re.findall(r'class="dose dose-(\w+)"', finished)
    assert set(re.findall(r'class="dose dose-(\w+)"', finished)) <= {"done", "closed"}
    assert "dose-done" not in coming


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width,height", [(360, 740), (1280, 800)])
def test_records_fit_a_phone(platform: Platform, width: int, height: int) -> None:
    p = platform
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": width, "height": height})
        sign_in_page(page, p, f"/me/records/{CHILD}", PARENT)
        for path in (f"/me/records/{CHILD}", f"/me/children/{CHILD}/growth"):
            page.goto(p.portal + path)
            found = page.evaluate(NARROWEST_CELL)
            assert found["cells"] > 10, path
            assert found["narrowest"] >= 3, (path, found)
            assert found["stacked"] is (width < 480), (path, found)
            assert page.evaluate("document.documentElement.scrollWidth") <= width

        # A link drawn as a button is exactly as tall as a real button (the header's sign-out).
        link = page.locator("main a.button").first.bounding_box()
        button = page.locator("#sign-out").bounding_box()
        assert link and button and abs(link["height"] - button["height"]) < 0.5, (link, button)
        assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith(
            "/favicon.svg"
        )

        page.goto(p.portal + f"/me/children/{CHILD}/vaccinations")
        main = page.locator("main")
        assert main.locator("h2").first.inner_text() == "次に受ける接種"
        assert page.locator("#next-doses .next-dose").count() >= 1
        assert page.locator("#finished").get_attribute("open") is None
        assert not page.locator("#dose-HepB-1").is_visible()  # finished: collapsed
        page.locator("#finished summary").click()
        assert page.locator("#dose-HepB-1").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
