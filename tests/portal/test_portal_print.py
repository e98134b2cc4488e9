"""A child's printable record (PDF) and CSV, downloaded from the records page signed in as the
demo parent on the live platform: the PDF parses, says the demo's Japanese vaccine names and
dates on pages that each name the day and the city, names its language and title, and embeds
its Japanese font; the CSV's rows are the demo records; a stranger gets neither, and a server
without the font says so. Without the platform: the PDF is given out a page at a time while
the records are read, and its writer keeps no finished page."""

from __future__ import annotations

import csv
import io
import re
import threading
import weakref
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pypdf import PdfReader
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfdoc

from phr_core.demo_data import DEMO_FAMILY
from phr_server.demo_family import CHILD_ID as CHILD
from phr_server.demo_family import CHILD_MEASUREMENTS, CHILD_VACCINATIONS
from phr_server.demo_family import PARENT_ID as PARENT
from portal import export_csv, print_pdf
from portal.export_facts import ChildFacts, Finding, Vaccination
from portal.pages import JST
from portal.pdf_stream import StreamedCanvas
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
        resources: Any = page["/Resources"]
        for ref in resources["/Font"].values():
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
    assert "Content-Length" not in pdf.headers  # streamed as it is drawn
    _assert_xref_points_at_objects(pdf.content)
    reader = PdfReader(io.BytesIO(pdf.content), strict=True)
    pages = [page.extract_text() for page in reader.pages]
    text = "\n".join(pages)
    printed = datetime.now(JST).date().isoformat()
    for page_text in pages:  # each page: the day printed and the source city
        assert f"印刷日：{printed}" in page_text and f"記録の提供元：{CITY}" in page_text
    assert f"お子さん（{_birth():%Y-%m}生まれ・女の子）の記録" in pages[0]
    assert reader.metadata is not None
    assert reader.metadata.title == f"お子さん（{_birth():%Y-%m}生まれ・女の子）の記録"
    catalog: Any = reader.trailer["/Root"]
    assert catalog["/Lang"] == "ja" and catalog["/ViewerPreferences"]["/DisplayDocTitle"]
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


def _assert_xref_points_at_objects(data: bytes) -> None:
    """Every in-use entry of the (one, classic) cross-reference table gives the offset where
    its object starts, and startxref the table's: the file is whole, not merely readable by a
    lenient reader that rebuilds a broken table."""
    start = int(data.rsplit(b"startxref", 1)[1].split()[0])
    table = data[start:].split(b"trailer")[0]
    assert table.startswith(b"xref\n0 "), table[:20]
    entries = re.findall(rb"(\d{10}) (\d{5}) ([nf]) ", table)
    assert len(entries) == int(table.split()[2])
    for number, (offset, _gen, kind) in enumerate(entries):
        if kind == b"n":
            assert data[int(offset) :].startswith(b"%d 0 obj" % number), number


def _counting(n: int, read: list[int]) -> ChildFacts:
    """n vaccinations read lazily, counting in read[0] how many have been handed over."""
    child = Person("c", "child", date(2020, 4, 1), "male")

    def given() -> Iterator[Vaccination]:
        for i in range(n):
            read[0] += 1
            yield Vaccination((date(2020, 4, 1) + timedelta(days=i)).isoformat(), "日本脳炎",
                              str(i % 4 + 1), CITY)  # fmt: skip

    return ChildFacts(child, child.label("ja"), [CITY], given(), [])


def test_the_printout_is_given_out_a_page_at_a_time_as_the_records_are_read() -> None:
    """The first bytes come once the first page is full, long before the last record is read,
    then a page at a time; every page refers to the same embedded font subset (once in the
    file, not once per page); the file is whole and says its language."""
    if not Path(print_pdf.DEFAULT_FONT).exists():
        pytest.skip("Debian's fonts-ipaexfont-gothic is not installed")
    read = [0]
    chunks = []
    seen = []
    for chunk in print_pdf.chunks(_counting(400, read), "ja", date.today(), print_pdf.DEFAULT_FONT):
        chunks.append(chunk)
        seen.append(read[0])
    assert chunks[0].startswith(b"%PDF-") and chunks[0].count(b"/Type /Page\n") == 1
    assert seen[0] < 100 and seen == sorted(seen) and seen[-2] < 400, seen  # ~60 rows a page
    assert all(b"%%EOF" not in c for c in chunks[:-1]) and chunks[-1].endswith(b"%%EOF\n")
    data = b"".join(chunks)
    _assert_xref_points_at_objects(data)
    reader = PdfReader(io.BytesIO(data), strict=True)
    # A chunk per table page; the last one also holds the charts' page and the file's end.
    assert len(chunks) == len(reader.pages) - 1 >= 6
    last_rows = reader.pages[-2].extract_text()
    assert "ワクチンの種類" in last_rows and "日本脳炎" in last_rows
    resources: list[Any] = [page["/Resources"] for page in reader.pages]
    fonts = {ref.idnum for r in resources for ref in r["/Font"].values()}
    assert len(fonts) == 1, fonts  # one subset of IPAex Gothic (under 256 glyphs), shared
    assert all(name.endswith("+IPAexGothic") for name, _ in _embedded_fonts(reader))
    catalog: Any = reader.trailer["/Root"]
    assert catalog["/Lang"] == "ja"


def test_the_streamed_document_keeps_no_finished_page() -> None:
    """However many pages are drawn, the document holds the same objects (none of them a
    page or its content) and the sink has every page's bytes as soon as it is finished."""
    if not Path(print_pdf.DEFAULT_FONT).exists():
        pytest.skip("Debian's fonts-ipaexfont-gothic is not installed")
    face = print_pdf.font(print_pdf.DEFAULT_FONT)
    out = io.BytesIO()
    canvas = StreamedCanvas(out.write, lang="ja", pagesize=A4, pageCompression=1,
                            initialFontName=face)  # fmt: skip
    doc: Any = canvas._doc
    add_page = doc.addPage
    pages: list[weakref.ref[pdfdoc.PDFPage]] = []

    def noting(page: pdfdoc.PDFPage) -> None:  # the document's own addPage, noting the page
        pages.append(weakref.ref(page))
        add_page(page)

    doc.addPage = noting
    held = []
    for n in range(20):
        canvas.setFont(face, 10)
        for line in range(40):
            canvas.drawString(40, 800 - 12 * line, f"{n + 1} ページ {line} 行目 日本脳炎 1回目")
        written = out.tell()
        canvas.showPage()
        assert out.tell() > written + 500  # the page and its compressed stream, out at once
        held.append((len(doc.idToObject), len(doc.numberToId), len(doc.idToObjectNumberAndVersion)))
    assert len(set(held)) == 1, held[:3]
    assert len(pages) == 20 and not [ref for ref in pages if ref() is not None]  # freed
    canvas.save()
    _assert_xref_points_at_objects(out.getvalue())
    reader = PdfReader(io.BytesIO(out.getvalue()), strict=True)
    assert len(reader.pages) == 20
    assert reader.pages[19].extract_text().startswith("20 ページ 0 行目 日本脳炎 1回目")
