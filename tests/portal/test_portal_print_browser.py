"""The printable record's links on a 360×740 phone screen in headless Chromium: on the child's
records page, inside the screen, and each a download (the files themselves:
test_portal_print.py)."""

from __future__ import annotations

import pytest

from phr_server.demo_family import CHILD_ID as CHILD
from tests.browser import browser_page
from tests.portal import live_platform
from tests.portal.live_platform import PARENT, Platform, sign_in_page

pytestmark = pytest.mark.browser
environ = live_platform.environ
platform = live_platform.platform


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_the_download_links_on_a_phone(platform: Platform) -> None:
    p = platform
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})
        sign_in_page(page, p, f"/me/records/{CHILD}", PARENT)
        for link, name in (
            ("#print-pdf", "印刷用の記録（PDF）"),
            ("#print-csv", "表計算用の記録（CSV）"),
        ):
            page.locator(link).scroll_into_view_if_needed()
            assert page.locator(link).is_visible() and page.locator(link).inner_text() == name
            box = page.locator(link).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
            with page.expect_download() as info:
                page.click(link)
            assert info.value.suggested_filename.startswith("child-record-")
            assert info.value.suggested_filename.endswith(link[-3:])
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
