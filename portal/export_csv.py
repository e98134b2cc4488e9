"""A child's records as CSV, the same facts as the printable record (portal.print_pdf): one row
per vaccination and per checkup finding, with the age in months and, for a growth
measurement, its place among the national percentiles.

UTF-8 with a byte order mark: Excel, which most parents and city staff in Japan open a CSV
with, reads a CSV without it as Shift_JIS (CP932) and shows the Japanese as mojibake; with the
BOM it reads UTF-8, and other programs (LibreOffice, pandas with `utf-8-sig`) accept it too.

Rows are written as the facts are read (a page of records at a time), never all in memory.
A cell that Excel would run as a formula (starting with = + - @ or a tab; from a city's data,
never the portal's own words) is prefixed with an apostrophe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from portal.care import growth
from portal.export_facts import ChildFacts, age_months
from portal.print_words import WORDS

BOM = "\ufeff"
COLUMNS = ("col_kind", "col_date", "col_age", "col_item", "col_dose", "col_value", "col_unit",
           "col_band", "col_city")  # fmt: skip
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def lines(facts: ChildFacts, lang: str) -> Iterator[bytes]:
    """The CSV, one encoded line at a time, the BOM before the header."""
    t = WORDS[lang]
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: list[str]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        out.writerow([_safe(c) for c in cells])
        return buffer.getvalue().encode("utf-8")

    yield BOM.encode("utf-8") + line([t[c] for c in COLUMNS])
    for v in facts.vaccinations:
        yield line([t["kind_vaccination"], v.day, _age(facts, v.day), v.vaccine, v.dose, "", "",
                    "", v.city])  # fmt: skip
    for f in facts.findings:
        where = ""
        if f.point is not None and f.measure and facts.sex:
            ref = growth.reference(f.measure, facts.sex)
            where = growth.band_words(growth.band(ref, f.point), lang)
        yield line([t["kind_finding"], f.day, _age(facts, f.day), f.item, "", f.value, f.unit,
                    where, f.city])  # fmt: skip


def _age(facts: ChildFacts, day: str) -> str:
    months = age_months(facts.child, day)
    return "" if months is None else f"{months:.1f}"


def _safe(cell: str) -> str:
    if cell.startswith(FORMULA_START):
        try:
            float(cell)
        except ValueError:
            return "'" + cell
    return cell
