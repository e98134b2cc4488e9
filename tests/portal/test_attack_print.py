"""Security review (branch attack) of the child's printable record: a city's data must neither
vanish silently from the printout nor stop it. Each test here failed when written."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from portal import print_pdf
from portal.export_facts import ChildFacts, Finding, Vaccination
from portal.plus_pages import Person

CITY = "会津若松市（デモ）"


def _font() -> str:
    if not Path(print_pdf.DEFAULT_FONT).exists():
        pytest.skip("Debian's fonts-ipaexfont-gothic is not installed")
    return print_pdf.DEFAULT_FONT


def _text(facts: ChildFacts) -> str:
    out = io.BytesIO()
    print_pdf.write(out, facts, "ja", date(2026, 1, 1), _font())
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(out.getvalue())).pages)


def test_a_visit_taller_than_a_page_is_not_dropped_silently() -> None:
    """One checkup day's findings are joined into one 'other' cell; past a page's height the
    row did not fit on a fresh page either, and Sheet.table dropped it (a blank page instead)."""
    child = Person("c", "child", date(2025, 1, 10), "female")
    day = "2025-03-10"
    found = [Finding(day, f"所見{i:03d}", "あり", "", CITY) for i in range(120)]
    found.append(Finding("2025-04-10", "最後の所見", "なし", "", CITY))
    facts = ChildFacts(child, child.label("ja"), [CITY], [], found)
    text = _text(facts)
    assert "最後の所見" in text  # the next visit is there
    assert "所見000" in text and "所見119" in text  # ...and so is the tall one


def test_a_month_precision_date_does_not_break_the_printout() -> None:
    """FHIR dateTime may be '2025-03' (a city's record of a visit known to the month): the CSV
    takes it (age unknown), the PDF raised ValueError from date.fromisoformat (a 500)."""
    child = Person("c", "child", date(2025, 1, 10), "female")
    given = [Vaccination("2025-03", "ヒブ", "1", CITY)]
    found = [Finding("2025-03", "歯科健診", "異常なし", "", CITY)]
    text = _text(ChildFacts(child, child.label("ja"), [CITY], given, found))
    assert "歯科健診" in text and "ヒブ" in text


def test_a_vaccine_name_taller_than_a_page_is_split_across_pages_marked() -> None:
    """The same for a vaccination: its too-long name goes on over the next page, after the
    header again and a continuation mark, and the next vaccination follows."""
    child = Person("c", "child", date(2025, 1, 10), "female")
    name = "ヒブ " * 1200 + "名前の終わり"
    given = [Vaccination("2025-03-10", name, "1", CITY), Vaccination("2025-05-10", "BCG", "", CITY)]
    text = _text(ChildFacts(child, child.label("ja"), [CITY], given, []))
    assert text.count("ヒブ") == 1200 and "名前の終わり" in text and "BCG" in text
    assert "（続き）" in text and text.count("ワクチンの種類") >= 2


def test_a_month_or_year_is_printed_as_the_record_gives_it() -> None:
    child = Person("c", "child", date(2025, 1, 10), "female")
    given = [Vaccination("2025-03", "ヒブ", "1", CITY), Vaccination("2026", "BCG", "", CITY)]
    text = _text(ChildFacts(child, child.label("ja"), [CITY], given, []))
    assert "2025年3月" in text and "2026年" in text
