"""Sign-in returns to the page asked for: a parent who opens a portal page signed out (say
/me/history from a notice) lands back on it after the IdP; only paths on the portal are
followed, anything that could leave it (absolute URLs, `//host`, backslashes, a scheme,
control characters) is ignored for the home page."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from portal.session import safe_return
from tests.browser import browser_page
from tests.portal import live_platform
from tests.portal.live_platform import (
    PARENT,
    TIMEOUT,
    Platform,
    sign_in,
    sign_in_page,
)

TRICKS = [
    "https://evil.example/me/history",
    "//evil.example/me/history",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "/me/history\\..\\..\\evil",
    "javascript:alert(1)",
    "http:/me/history",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "me/history",
    "/auth/logout",
    "",
]

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


@pytest.mark.parametrize("value", TRICKS)
def test_only_portal_paths_are_returned_to(value: str) -> None:
    assert safe_return(value) is None


@pytest.mark.parametrize("value", ["/", "/me/history", "/me/history?cursor=abc", "/me/apps#x"])
def test_portal_paths_are_kept(value: str) -> None:
    assert safe_return(value) == value


def test_sign_in_returns_to_the_page_opened(platform: Platform) -> None:
    p = platform
    anonymous = requests.Session()
    gate = anonymous.get(p.portal + "/me/history", allow_redirects=False, timeout=TIMEOUT)
    assert gate.status_code == 302 and gate.headers["Location"].endswith("/auth/login")
    assert sign_in(anonymous, p, start="/me/history") == p.portal + "/me/history"

    explicit = requests.Session()
    start = "/auth/login?next=" + quote("/me/notices?lang=ja", safe="")
    assert sign_in(explicit, p, start=start) == p.portal + "/me/notices?lang=ja"

    plain = requests.Session()  # no page asked for: the home page, as before
    assert sign_in(plain, p) == p.portal + "/?lang=ja"


def test_sign_in_ignores_a_return_value_that_leaves_the_portal(platform: Platform) -> None:
    p = platform
    for trick in TRICKS:
        browser = requests.Session()
        start = "/auth/login?next=" + quote(trick, safe="")
        assert sign_in(browser, p, start=start) == p.portal + "/?lang=ja", trick


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width,height", [(360, 740), (1280, 800)])
def test_a_notice_link_opened_signed_out_lands_on_its_page(
    platform: Platform, width: int, height: int
) -> None:
    p = platform
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": width, "height": height})
        sign_in_page(page, p, "/me/history", PARENT)
        assert page.locator("#sign-out").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
