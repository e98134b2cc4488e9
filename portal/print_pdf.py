"""A child's printable record: a PDF laid out like the pages of the 母子健康手帳 (予防接種の記録,
the 健康診査 visits, the 乳幼児身体発育曲線), drawn with reportlab's canvas, with a Japanese
TrueType font (PHR_CONSENT_PDF_FONT) embedded as a subset so it prints the same anywhere.

Flat memory: rows are drawn as the facts are read (portal.export_facts reads a page of records
at a time), and each finished page is compressed and given out at once (portal.pdf_stream), so
the portal streams the file to the browser while it draws the rest; only the embedded font
subset, the page tree and the cross-reference table come at the end. What waits for the growth
charts is bounded by the charts' resolution (one point per tenth of a month per measure), not
by the number of records (bench/export_pdf.md has the figures).

The document names its language (/Lang) and its title, shown by viewers instead of the file
name; it is not a tagged PDF (reportlab cannot write the structure tree), so screen readers
get its text without table structure: the CSV and the records pages are the accessible forms.

Every page names the child as the portal shows them (the PHR servers hold no names), the day
it was printed and the cities the records come from."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

from portal import pdf_stream
from portal.care import growth
from portal.export_facts import ChildFacts, Finding, Vaccination
from portal.print_words import WORDS

WIDTH, HEIGHT = A4
MARGIN = 40.0
FOOTER = 28.0  # the band under the last row holding the footer
LINE = 12.0  # one line of a table cell (9 pt text)
PAD = 4.0
HEAD_SIZE = 8.5  # a table header's text
ROW_SIZE = 9.0  # a table row's text
INK = (0.2, 0.22, 0.26)
RULE = (0.6, 0.64, 0.69)
BANDS = ((0.86, 0.91, 0.96), (0.73, 0.83, 0.93), (0.58, 0.74, 0.9))  # p3–97, p10–90, p25–75
POINT = (0.71, 0.14, 0.09)
CHART_MEASURES = ("weight", "height", "head_circumference")
BIN_MONTHS = 0.1  # chart resolution: one point per measure per tenth of a month
DEFAULT_FONT = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"  # fonts-ipaexfont-gothic

_fonts: dict[str, str] = {}
_fonts_lock = threading.Lock()


class FontMissing(Exception):
    """The configured font cannot be read, or is no TrueType (glyf) font."""


def font(path: str) -> str:
    """The reportlab name of the TrueType font at `path`, registered once per process."""
    with _fonts_lock:
        if path not in _fonts:
            if not Path(path).is_file():
                raise FontMissing(f"no font file at {path}")
            name = f"PHRJapanese{len(_fonts)}"
            try:
                pdfmetrics.registerFont(TTFont(name, path))
            except TTFError as exc:  # e.g. CFF outlines (Noto Sans CJK), a TTC, no Unicode map
                raise FontMissing(f"{path} cannot be embedded: {exc}") from None
            _fonts[path] = name
        return _fonts[path]


@dataclass(frozen=True)
class Column:
    title: str
    width: float  # share of the table's width
    right: bool = False


class Sheet:
    """The document being drawn: the current page, where the next row goes, and what every
    page repeats (the running head and the footer). Each finished page goes to `sink`."""

    def __init__(
        self, sink: pdf_stream.Sink, facts: ChildFacts, lang: str, printed: date, face: str
    ) -> None:
        # The face is the initial font too: no page names an unembedded standard font.
        self.c = pdf_stream.StreamedCanvas(
            sink, lang=lang, pagesize=A4, pageCompression=1, initialFontName=face
        )
        self.t = WORDS[lang]
        self.lang = lang
        self.facts = facts
        self.face = face
        self.printed = printed.isoformat()
        self.page = 0
        self.y = 0.0
        title = self.t["doc_title"].format(who=facts.label)
        self.c.setTitle(title)
        self.c.setSubject(self.t["doc_subtitle"])
        self.c.setViewerPreference("DisplayDocTitle", "true")  # the title, not the file name
        self.new_page()
        self.text(MARGIN, self.y - 18, title, 18)
        self.text(MARGIN, self.y - 36, self.t["doc_subtitle"], 10)
        self.y -= 52

    # --- pages -------------------------------------------------------------------------------

    def new_page(self) -> None:
        if self.page:
            self.c.showPage()
        self.page += 1
        self._size = 0.0  # a new page starts with reportlab's initial font size
        self.ink()
        footer = self.t["footer"].format(
            date=self.printed, cities="・".join(self.facts.cities), page=self.page
        )
        self.c.setStrokeColorRGB(*RULE)
        self.c.line(MARGIN, MARGIN + 12, WIDTH - MARGIN, MARGIN + 12)
        self.text(MARGIN, MARGIN, footer, 8)
        self.y = HEIGHT - MARGIN
        if self.page > 1:  # the running head: whose record this page is
            self.text(MARGIN, self.y - 8, self.t["doc_title"].format(who=self.facts.label), 8)
            self.y -= 20

    def need(self, height: float) -> bool:
        """Start a new page unless `height` still fits on this one; True if it started one."""
        if self.y - height >= MARGIN + FOOTER:
            return False
        self.new_page()
        return True

    def text(self, x: float, y: float, s: str, size: float, align: str = "left") -> None:
        if self._size != size:  # set only on a change: a table row draws many cells
            self.c.setFont(self.face, size)
            self._size = size
        if align == "left":
            self.c.drawString(x, y, s)
        elif align == "right":
            self.c.drawRightString(x, y, s)
        else:
            self.c.drawCentredString(x, y, s)

    def ink(self) -> None:
        """Text colour for what follows (after a shape's fill)."""
        self.c.setFillColorRGB(*INK)

    def heading(self, s: str) -> None:
        self.need(24 + 2 * (LINE + PAD))  # never a heading alone at the foot of a page
        self.y -= 10
        self.c.setFillColorRGB(*INK)
        self.c.rect(MARGIN, self.y - 16, 4, 16, stroke=0, fill=1)
        self.text(MARGIN + 10, self.y - 13, s, 13)
        self.y -= 24

    def wrap(self, s: str, size: float, width: float) -> list[str]:
        """The lines of `s` in `width` (most cells fit on one: measured once, not split)."""
        if pdfmetrics.stringWidth(s, self.face, size) <= width:
            return [s]
        return simpleSplit(s, self.face, size, width) or [""]

    def note(self, s: str, size: float = 9) -> None:
        for line in simpleSplit(s, self.face, size, WIDTH - 2 * MARGIN):
            self.need(size + 4)
            self.text(MARGIN, self.y - size, line, size)
            self.y -= size + 4

    def save(self) -> None:
        self.c.showPage()
        self.c.save()

    # --- tables ------------------------------------------------------------------------------

    def table(self, columns: list[Column], rows: Iterable[list[str]]) -> Generator[None, None, int]:
        """Rows drawn as they come, the header again at the top of each new page, pausing after
        each row (so a finished page can be given out); returns the count. A row that does not
        fit goes to the next page whole; one taller than a page is split across pages, its
        continuation marked, so no row is left out."""
        total = sum(col.width for col in columns)
        widths = [(WIDTH - 2 * MARGIN) * col.width / total for col in columns]
        header = self._lines([col.title for col in columns], widths, HEAD_SIZE)
        self.need(_height(header) + LINE + 2 * PAD)  # a header and at least one row
        self._draw(columns, header, widths, HEAD_SIZE, header=True)
        n = 0
        for row in rows:
            lines = self._lines(row, widths, ROW_SIZE)
            whole = True  # nothing of this row drawn yet
            while True:
                room = int((self.y - MARGIN - FOOTER - PAD) // LINE)
                tall = max(len(ls) for ls in lines)
                if tall <= room:
                    self._draw(columns, lines, widths, ROW_SIZE)
                    break
                if room > 0 and not (whole and _height(lines) <= self._page_room(header)):
                    self._draw(columns, [ls[:room] for ls in lines], widths, ROW_SIZE)
                    lines = [ls[room:] for ls in lines]
                    lines[0] = [self.t["continued"], *lines[0]]
                    whole = False
                self.new_page()
                self._draw(columns, header, widths, HEAD_SIZE, header=True)
            n += 1
            yield
        return n

    def _lines(self, cells: list[str], widths: list[float], size: float) -> list[list[str]]:
        return [self.wrap(s, size, w - 2 * PAD) for s, w in zip(cells, widths, strict=True)]

    def _page_room(self, header: list[list[str]]) -> float:
        """The height a row has on a fresh page, under the running head and the header."""
        return HEIGHT - MARGIN - 20 - _height(header) - MARGIN - FOOTER

    def _draw(
        self, columns: list[Column], lines: list[list[str]], widths: list[float], size: float,
        header: bool = False,
    ) -> None:  # fmt: skip
        """One row (or the part of one that fits) at the current place, ruled below."""
        height = _height(lines)
        if header:
            self.c.setFillColorRGB(0.93, 0.95, 0.97)
            self.c.rect(MARGIN, self.y - height, WIDTH - 2 * MARGIN, height, stroke=0, fill=1)
            self.ink()
        x = MARGIN
        for col, ls, w in zip(columns, lines, widths, strict=True):
            for i, line in enumerate(ls):
                y = self.y - PAD - 8 - i * LINE
                self.text(
                    x + w - PAD if col.right else x + PAD,
                    y,
                    line,
                    size,
                    "right" if col.right else "left",
                )
            x += w
        self.y -= height
        self.c.setStrokeColorRGB(*RULE)
        self.c.line(MARGIN, self.y, WIDTH - MARGIN, self.y)


def _height(lines: list[list[str]]) -> float:
    return max(len(ls) for ls in lines) * LINE + PAD


def chunks(facts: ChildFacts, lang: str, printed: date, font_path: str) -> Iterator[bytes]:
    """The printout of one child as it is drawn: nothing until the first page is finished (the
    records it shows read), then each page's bytes, then the end of the file. Raises
    FontMissing at once, before anything is read."""
    face = font(font_path)
    return pdf_stream.pages(lambda sink: _draw(Sheet(sink, facts, lang, printed, face)))


def write(out: IO[bytes], facts: ChildFacts, lang: str, printed: date, font_path: str) -> None:
    """The whole printout of one child into `out` (the bench and tests)."""
    for chunk in chunks(facts, lang, printed, font_path):
        out.write(chunk)


def _draw(sheet: Sheet) -> Iterator[None]:
    t, facts, lang = sheet.t, sheet.facts, sheet.lang
    sheet.heading(t["vaccinations"])
    columns = [Column(t["vaccine"], 5), Column(t["dose"], 1.4), Column(t["date_given"], 2),
               Column(t["city"], 2.6)]  # fmt: skip
    if not (yield from sheet.table(columns, _vaccination_rows(facts.vaccinations, sheet))):
        sheet.note(t["none_yet"])
    sheet.heading(t["checkups"])
    columns = [Column(t["visit_date"], 2), Column(t["age"], 1.6), Column(t["weight"], 1.4, True),
               Column(t["height"], 1.6, True), Column(t["head"], 1.4, True),
               Column(t["other"], 3), Column(t["city"], 2.2)]  # fmt: skip
    points: dict[str, dict[int, growth.Measurement]] = {m: {} for m in CHART_MEASURES}
    if not (yield from sheet.table(columns, _visit_rows(facts, lang, points))):
        sheet.note(t["none_yet"])
    _charts(sheet, facts, {m: sorted(p.values(), key=lambda p: p.age_m) for m, p in
                           points.items()})  # fmt: skip
    points.clear()  # bounded by the charts' resolution, yet not kept while the font subset is made
    sheet.save()


def _vaccination_rows(items: Iterable[Vaccination], sheet: Sheet) -> Iterator[list[str]]:
    t, lang = sheet.t, sheet.lang
    for v in items:
        yield [
            v.vaccine,
            t["dose_n"].format(n=v.dose) if v.dose else "",
            _when(v.day, lang),
            v.city,
        ]


def _visit_rows(
    facts: ChildFacts, lang: str, points: dict[str, dict[int, growth.Measurement]]
) -> Iterator[list[str]]:
    """One row per visit (the findings of one day in one city), like the handbook's 健康診査
    pages; the growth measurements are kept for the charts, one per chart bin."""
    for (day, city), group in itertools.groupby(facts.findings, key=lambda f: (f.day, f.city)):
        measured = {m: "" for m in CHART_MEASURES}
        other = []
        for f in group:
            if f.measure in measured and f.point is not None:
                measured[f.measure] = f"{f.point.value:.{2 if f.measure == 'weight' else 1}f}"
                points[f.measure][round(f.point.age_m / BIN_MONTHS)] = f.point
            else:
                other.append(_finding_words(f))
        age = ""
        when = _full_date(day)
        if facts.child.birth_date is not None and when is not None:
            age = facts.child.age(lang, when)
        yield [_when(day, lang), age, *measured.values(), "、".join(other), city]


def _full_date(day: str) -> date | None:
    """The day when the record gives one; None for a year or a month (FHIR dateTime allows
    "2025" and "2025-03"), whose age is not known."""
    try:
        return date.fromisoformat(day) if len(day) == 10 else None
    except ValueError:
        return None


def _when(day: str, lang: str) -> str:
    """The date as the record gives it: a day as it is, in Japanese a month or a year as the
    handbook writes them (2025年3月, 2025年), in English as given (2025-03, 2025)."""
    year, _, month = day.partition("-")
    if lang != "ja" or not (year.isdigit() and len(year) == 4):
        return day
    if not month:
        return f"{year}年"
    if month.isdigit() and len(month) == 2:
        return f"{year}年{int(month)}月"
    return day


def _finding_words(f: Finding) -> str:
    return " ".join(s for s in (f.item, f.value, f.unit) if s)


# --- growth charts ----------------------------------------------------------------------------

CHART_H = 200.0


def _charts(sheet: Sheet, facts: ChildFacts, points: dict[str, list[growth.Measurement]]) -> None:
    t = sheet.t
    sheet.new_page()  # the charts start a page, as in the handbook
    sheet.heading(t["growth"])
    if facts.sex is None:
        sheet.note(t["no_sex"])
        return
    sheet.note(t["growth_note"], 8.5)
    for measure in CHART_MEASURES:
        sheet.need(CHART_H + 8)
        _chart(sheet, measure, facts.sex, points[measure], sheet.y - CHART_H)
        sheet.y -= CHART_H + 8


def _chart(sheet: Sheet, measure: str, sex: str, points: list[growth.Measurement],
           bottom: float) -> None:  # fmt: skip
    """One chart like growth.chart_svg's, drawn with the canvas: the bands, the dashed
    median, the child's points joined by a line, the axes and the source."""
    c, t = sheet.c, sheet.t
    ref = growth.reference(measure, sex)
    _, unit, name_ja, name_en = growth.MEASURES[measure]
    name = name_ja if sheet.lang == "ja" else name_en
    xmax = growth.x_range(points, ref)
    shown = [r for r in ref if r.age_m <= xmax]
    inside = [p for p in points if p.age_m <= xmax]
    lo = min([r.values[0] for r in shown] + [p.value for p in inside])
    hi = max([r.values[-1] for r in shown] + [p.value for p in inside])
    step = _step(hi - lo)
    y0, y1 = math.floor(lo / step) * step, math.ceil(hi / step) * step
    left, right = MARGIN + 30, WIDTH - MARGIN - 6
    top, base = bottom + CHART_H - 22, bottom + 34

    def x(a: float) -> float:
        return left + (right - left) * a / xmax

    def y(v: float) -> float:
        return base + (top - base) * (v - y0) / (y1 - y0)

    sheet.text(
        MARGIN, top + 9, f"{name}（{unit}）" if sheet.lang == "ja" else f"{name} ({unit})", 10
    )
    c.setStrokeColorRGB(*RULE)
    c.rect(left, base, right - left, top - base, stroke=1, fill=0)
    for (low, high), fill in zip(((0, 6), (1, 5), (2, 4)), BANDS, strict=True):
        path = c.beginPath()
        path.moveTo(x(shown[0].age_m), y(shown[0].values[high]))
        for r in shown[1:]:
            path.lineTo(x(r.age_m), y(r.values[high]))
        for r in reversed(shown):
            path.lineTo(x(r.age_m), y(r.values[low]))
        path.close()
        c.setFillColorRGB(*fill)
        c.drawPath(path, stroke=0, fill=1)
    sheet.ink()
    c.setStrokeColorRGB(*INK)
    c.setDash(4, 3)
    c.lines([(x(a.age_m), y(a.values[3]), x(b.age_m), y(b.values[3]))
             for a, b in itertools.pairwise(shown)])  # fmt: skip
    c.setDash()
    for i in range(round((y1 - y0) / step) + 1):
        v = round(y0 + i * step, 3)
        c.line(left - 3, y(v), left, y(v))
        sheet.text(left - 5, y(v) - 3, f"{v:g}", 7.5, "right")
    every = 3 if xmax <= 24 else 6 if xmax <= 48 else 12
    for a in range(0, int(xmax) + 1, every):
        c.line(x(a), base, x(a), base - 3)
        sheet.text(x(a), base - 12, str(a), 7.5, "centre")
    sheet.text(left, base - 23, t["age_axis"], 7.5)
    source = growth.SOURCE_JA if sheet.lang == "ja" else growth.SOURCE_EN
    sheet.text(right, base - 23, source, 7, "right")
    if inside:
        c.setStrokeColorRGB(*POINT)
        c.setFillColorRGB(*POINT)
        c.setLineWidth(1.2)
        c.lines([(x(a.age_m), y(a.value), x(b.age_m), y(b.value))
                 for a, b in itertools.pairwise(inside)])  # fmt: skip
        for p in inside:
            c.circle(x(p.age_m), y(p.value), 2.4, stroke=0, fill=1)
        c.setLineWidth(1)
        sheet.ink()


def _step(span: float) -> float:
    """A round tick step giving at most eight intervals."""
    return next((s for s in (0.5, 1, 2, 5, 10, 20) if span / s <= 8), 50)
