"""The printable record and CSV of a child whose family moved: both cities' records in one
date order, every page naming both cities; with one city's server down there is no printout
(a record missing a city's doses would read as doses never given)."""

from __future__ import annotations

import csv
import io

import requests
from pypdf import PdfReader

from phr_server.demo_family import CHILD_ID as CHILD_A
from tests.federation.conftest import federation  # noqa: F401 (fixture)
from tests.portal.live_platform import TIMEOUT, sign_in
from tests.portal.test_portal_two_cities import city_b_database, environ, two  # noqa: F401
from tests.portal.two_cities import TwoCities

CITIES = ("会津若松市（デモ）・福島市（デモ）", "福島市（デモ）・会津若松市（デモ）")


def test_a_moved_childs_record_has_both_cities(two: TwoCities) -> None:  # noqa: F811
    p = two.platform
    browser = requests.Session()
    sign_in(browser, p)
    base = f"{p.portal}/me/children/{CHILD_A}"

    download = browser.get(f"{base}/record.csv", timeout=TIMEOUT)
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    doses = [r for r in rows if r["種類"] == "予防接種"]
    assert len(doses) == 14 + 1  # city A's 14 doses and B's varicella, merged by date
    assert [r["日付"] for r in doses] == sorted(r["日付"] for r in doses)
    assert [r["市区町村"] for r in doses if r["項目"] == "水痘"] == ["福島市（デモ）"]
    assert doses[-1]["市区町村"] == "福島市（デモ）"
    measured = [r for r in rows if r["種類"] == "健診・計測"]
    assert len(measured) == 18 + 1 and measured[-1]["市区町村"] == "福島市（デモ）"

    pdf = browser.get(f"{base}/record.pdf", timeout=TIMEOUT)
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages]
    assert pages and all(any(f"記録の提供元：{c}" in text for c in CITIES) for text in pages)
    assert "水痘" in pages[0]

    two.stop_b()
    for ext in ("pdf", "csv"):
        resp = browser.get(f"{base}/record.{ext}", timeout=TIMEOUT)
        assert resp.status_code == 503 and 'role="alert"' in resp.text, ext
