"""Portal pages that need no sign-in: the privacy notice every consent and receipt points to."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from phr_core.config import Settings
from tests.browser import browser_page, live_server


def test_privacy_notice_in_both_languages(client: FlaskClient) -> None:
    ja = client.get("/privacy")
    assert ja.status_code == 200 and ja.headers["Content-Language"] == "ja"
    page = ja.get_data(as_text=True)
    assert "プライバシーと同意について" in page
    assert "予防接種" in page and "診療報酬明細（レセプト）" in page
    assert "18歳になる誕生日" in page
    en = client.get("/privacy?lang=en").get_data(as_text=True)
    assert "Privacy and consent" in en and "18th birthday" in en
    assert 'href="/privacy"' in client.get("/").get_data(as_text=True)


def test_api_errors_are_json_and_portal_errors_are_pages(client: FlaskClient) -> None:
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.json["error"] == "not_found"
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_privacy_notice_on_a_phone(migrated: Settings, consent_app: Flask) -> None:
    with live_server(consent_app) as base, browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})
        page.goto(base + "/")
        page.click("#privacy-link")
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == "プライバシーと同意について"
        assert page.locator("#categories li").count() == 4
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
