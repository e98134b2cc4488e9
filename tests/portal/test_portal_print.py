"""A child's printable record (PDF) and CSV, downloaded from the records page signed in as the
demo parent on the live platform: the PDF parses, says the demo's Japanese vaccine names and
dates on pages that each name the day and the city, and embeds its Japanese font; the CSV's
rows are the demo records; a stranger gets neither, and a server without the font says so."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pypdf import PdfReader

from phr_core.demo_data import DEMO_FAMILY
from phr_server.demo_family import CHILD_ID as CHILD
from phr_server.demo_family import CHILD_MEASUREMENTS, CHILD_VACCINATIONS
from phr_server.demo_family import PARENT_ID as PARENT
from portal import export_csv, print_pdf
from portal.export_facts import ChildFacts, Finding, Vaccination
from portal.pages import JST
from portal.plus_pages import Person
from tests.portal import live_platform
from tests.portal.live_platform import STRANGER, TIMEOUT, Platform, platform_environ, sign_in

platform = live_platform.platform
CITY = "会津若松市（デモ）"
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


@pytest.fixture
def environ(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> dict[str, str]:
    env = platform_environ(tmp_path, database_url)
    font = getattr(request, "param", None)
    if font is not None:
        env["PHR_CONSENT_PDF_FONT"] = font
    return env


def _get(browser: requests.Session, p: Platform, path: str) -> requests.Response:
    return browser.get(p.portal + path, timeout=TIMEOUT)


def _birth() -> date:
    return DEMO_FAMILY.child_birth(date.today())


def _embedded_fonts(reader: PdfReader) -> Iterator[tuple[str, list[str]]]:
    """(BaseFont, the FontFile keys of its descriptor) of every font each page uses."""
    for page in reader.pages:
        fonts: Any = page["/Resources"]["/Font"]
        for ref in fonts.values():
            font = ref.get_object()
            if "/DescendantFonts" in font:
                font = font["/DescendantFonts"][0].get_object()
            descriptor = font["/FontDescriptor"].get_object()
            yield str(font["/BaseFont"]), [k for k in descriptor if k.startswith("/FontFile")]


def test_the_printable_record_and_csv_of_the_demo_child(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p)
    records = _get(browser, p, f"/me/records/{CHILD}")
    assert f'id="print-pdf" href="/me/children/{CHILD}/record.pdf"' in records.text
    assert f'id="print-csv" href="/me/children/{CHILD}/record.csv"' in records.text
    assert 'id="print-pdf"' not in _get(browser, p, f"/me/records/{PARENT}").text

    pdf = _get(browser, p, f"/me/children/{CHILD}/record.pdf")
    assert pdf.status_code == 200, pdf.text[:300]
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith('attachment; filename="child-record-')
    assert pdf.headers["Cache-Control"] == "no-store"
    reader = PdfReader(io.BytesIO(pdf.content))
    pages = [page.extract_text() for page in reader.pages]
    text = "\n".join(pages)
    printed = datetime.now(JST).date().isoformat()
    for page_text in pages:  # each page: the day printed and the source city
        assert f"印刷日：{printed}" in page_text and f"記録の提供元：{CITY}" in page_text
    assert f"お子さん（{_birth():%Y-%m}生まれ・女の子）の記録" in pages[0]
    assert "予防接種の記録" in text and "健康診査の記録" in text and "成長曲線" in text
    for _code, name, dose, age in CHILD_VACCINATIONS:
        assert name in text and f"{dose}回目" in text
        assert (_birth() + timedelta(days=age)).isoformat() in text
    for age, weight, length, head in CHILD_MEASUREMENTS:
        assert (_birth() + timedelta(days=age)).isoformat() in text
        assert f"{weight:.2f}" in text and f"{length:.1f}" in text and f"{head:.1f}" in text
    assert "出典：こども家庭庁「令和5年乳幼児身体発育調査」" in text  # under each chart
    fonts = dict(_embedded_fonts(reader))
    assert fonts and all(files == ["/FontFile2"] for files in fonts.values()), fonts
    assert all(name.endswith("+IPAexGothic") for name in fonts), fonts  # a subset, embedded

    download = _get(browser, p, f"/me/children/{CHILD}/record.csv")
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "Content-Length" not in download.headers  # streamed
    assert download.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel reads UTF-8 by
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    given = {(r["項目"], r["回"], r["日付"]) for r in rows if r["種類"] == "予防接種"}
    assert given == {
        (name, str(dose), (_birth() + timedelta(days=age)).isoformat())
        for _code, name, dose, age in CHILD_VACCINATIONS
    }
    measured = [r for r in rows if r["種類"] == "健診・計測"]
    assert len(measured) == 3 * len(CHILD_MEASUREMENTS)
    weights = {(r["日付"], float(r["値"])) for r in measured if r["項目"] == "体重"}
    assert weights == {
        ((_birth() + timedelta(days=age)).isoformat(), w) for age, w, _, _ in CHILD_MEASUREMENTS
    }
    assert all(
        r["市区町村"] == CITY and r["成長の目安"].endswith("パーセンタイル") for r in measured
    )
    dates = [r["日付"] for r in measured]
    assert dates == sorted(dates)

    english = _get(browser, p, f"/me/children/{CHILD}/record.csv?lang=en")
    assert english.content.decode("utf-8-sig").startswith("kind,date,age_months,item,dose,")

    # The parent's own Patient is no child; a stranger gets neither file; signed out: sign in.
    assert _get(browser, p, f"/me/children/{PARENT}/record.pdf").status_code == 404
    stranger = requests.Session()
    sign_in(stranger, p, STRANGER)
    for path in (f"/me/children/{CHILD}/record.pdf", f"/me/children/{CHILD}/record.csv"):
        resp = _get(stranger, p, path)
        assert resp.status_code == 404 and 'role="alert"' in resp.text, path
    signed_out = requests.Session().get(
        p.portal + f"/me/children/{CHILD}/record.csv", allow_redirects=False, timeout=TIMEOUT
    )
    assert signed_out.status_code == 302


@pytest.mark.parametrize("environ", ["/nonexistent/font.ttf"], indirect=True)
def test_without_its_font_the_pdf_link_answers_a_readable_page(platform: Platform) -> None:
    browser = requests.Session()
    sign_in(browser, platform)
    resp = _get(browser, platform, f"/me/children/{CHILD}/record.pdf")
    assert resp.status_code == 503 and resp.headers["Content-Type"].startswith("text/html")
    assert 'id="print-unavailable"' in resp.text and "PHR_CONSENT_PDF_FONT" in resp.text
    assert _get(browser, platform, f"/me/children/{CHILD}/record.csv").status_code == 200


@pytest.mark.skipif(not NOTO_CJK.exists(), reason="Debian's fonts-noto-cjk is not installed")
def test_a_font_with_cff_outlines_is_refused_by_name() -> None:
    """Noto Sans CJK (CFF outlines): reportlab cannot embed it; the portal says which file."""
    with pytest.raises(print_pdf.FontMissing, match="NotoSansCJK"):
        print_pdf.font(str(NOTO_CJK))


def test_csv_cells_excel_would_run_are_quoted_and_numbers_kept() -> None:
    child = Person("c", "child", date(2025, 1, 10), "female")
    bad = '=HYPERLINK("http://x")'
    day = "2025-03-10"
    given = [Vaccination(day, bad, "1", "@city")]
    found = [Finding(day, "+x", "-0.5", "", CITY), Finding(day, "体重", "-", "", CITY)]
    facts = ChildFacts(child, child.label("ja"), [CITY], given, found)
    text = b"".join(export_csv.lines(facts, "ja")).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["予防接種", "2025-03-10", "1.9", "'" + bad, "1", "", "", "", "'@city"]
    assert rows[2][3:6] == ["'+x", "", "-0.5"]  # a negative number stays a number
    assert rows[3][5] == "'-"


def _many(n: int) -> ChildFacts:
    child = Person("c", "child", date(2020, 4, 1), "male")
    days = [(date(2020, 4, 1) + timedelta(days=i)).isoformat() for i in range(n)]
    given = [Vaccination(d, "日本脳炎", str(i % 4 + 1), CITY) for i, d in enumerate(days)]
    return ChildFacts(child, child.label("ja"), [CITY], given, [])


def test_long_tables_repeat_their_header_and_concurrent_printouts_stay_whole() -> None:
    """Every page of a long table starts with its header and ends with the footer; two
    printouts written at once (a portal worker's threads share the font) both parse."""
    font = print_pdf.DEFAULT_FONT if Path(print_pdf.DEFAULT_FONT).exists() else None
    if font is None:
        pytest.skip("Debian's fonts-ipaexfont-gothic is not installed")
    outs = [io.BytesIO(), io.BytesIO()]
    threads = [
        threading.Thread(target=print_pdf.write, args=(out, _many(n), "ja", date.today(), font))
        for out, n in zip(outs, (300, 250), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out, n in zip(outs, (300, 250), strict=True):
        pages = [p.extract_text() for p in PdfReader(io.BytesIO(out.getvalue())).pages]
        tables = pages[:-1]  # the last page has the (empty) growth charts
        assert len(tables) >= 4
        assert all(p.count("ワクチンの種類") == 1 and "ページ" in p for p in tables)
        assert sum(p.count("日本脳炎") for p in tables) == n
