"""The portal in a real browser: Japanese first, one tap to English, readable errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from launcher.demo import load_all
from phr_core.config import Settings
from phr_core.demo_data import DEMO_MUNICIPALITY
from tests.browser import browser_page, live_server

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_portal_in_chromium(migrated: Settings, app_factory: Callable[[str], Flask]) -> None:
    load_all(migrated)
    with live_server(app_factory("consent")) as base, browser_page("ja-JP") as page:
        page.goto(base + "/")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.locator("h1").inner_text() == "わたしの健康記録ポータル"
        assert DEMO_MUNICIPALITY.name_ja in page.locator("#municipalities").inner_text()

        page.click("#lang-switch")
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "en"
        assert DEMO_MUNICIPALITY.name_en in page.locator("#municipalities").inner_text()

        page.goto(base + "/missing")  # the English choice is remembered
        assert "This page does not exist." in page.locator("[role=alert]").inner_text()

        # A phone-sized screen shows the page without sideways scrolling.
        page.set_viewport_size({"width": 360, "height": 740})
        page.goto(base + "/")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360
