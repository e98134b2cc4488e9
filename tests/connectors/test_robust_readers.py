"""No row can crash a reader (issue 21): generated and mutated inputs always come back as
Records and Problems, a Problem names a field of the record layout (never a value of the file),
digits are ASCII digits, and dates outside what the platform takes are refused at the reader."""

from __future__ import annotations

import ast
import csv
import io
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.sources import mch_csv, uke, vaccination_csv
from connectors.sources.base import (
    UNREADABLE,
    Problem,
    Record,
    RowError,
    detect_encoding,
    parse_iso_date,
)
from connectors.sources.uke import fields as uke_fields

SAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "samples"
MARK = "〒"  # in no field name and no reason: where it shows up in a report, a value leaked
NASTY = ["①", "²", "５", "٣", "9" * 40, "99991231", "9999-12-31", "", " ", "nan", "1e9", MARK]
CELL = st.one_of(
    st.sampled_from(NASTY),
    st.text(alphabet="0123456789①²５٣〒,-+. /ｱ山", max_size=12),
    st.text(max_size=12).map(lambda t: t.replace("\n", "").replace("\r", "")),
)
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _uke_lines(name: str) -> list[str]:
    text = (SAMPLES / name).read_bytes().decode("cp932").rstrip("\x1a")
    return [x for x in text.split("\r\n") if x]


def _write_uke(path: Path, lines: list[str]) -> None:
    data = "".join(x + "\r\n" for x in lines).encode("cp932", errors="replace")
    path.write_bytes(data + b"\x1a")


def _check(items: list[Record | Problem], layout: frozenset[str]) -> None:
    for it in items:
        assert isinstance(it, Record | Problem)
        if isinstance(it, Problem):
            assert it.field in layout or it.field == UNREADABLE, it
            assert MARK not in it.field + it.reason, it


@pytest.mark.parametrize("sample", ["RECEIPTC.UKE", "RECEIPTY.UKE"])
@SETTINGS
@given(data=st.data())
def test_a_mutated_uke_file_never_crashes_the_reader(
    tmp_path: Path, sample: str, data: st.DataObject
) -> None:
    lines = _uke_lines(sample)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        cells = lines[i].split(",")
        j = data.draw(st.integers(0, len(cells)))
        if j == len(cells):  # a stray line (a line break inside a free-text field)
            lines.insert(i + 1, data.draw(CELL))
        else:
            cells[j] = data.draw(CELL)
            lines[i] = ",".join(cells)
    path = tmp_path / sample
    _write_uke(path, lines)
    items = list(uke.read(path))
    _check(items, uke.LAYOUT)
    assert items  # every receipt is accounted for, as a Record or a Problem


@SETTINGS
@given(lines=st.lists(st.lists(CELL, min_size=1, max_size=12), max_size=12))
def test_generated_uke_lines_never_crash_the_reader(tmp_path: Path, lines: list[list[str]]) -> None:
    head = ["IR,2,07,1,1234567,,テスト医院,202504,00,", "RE,1,1112,202503,,1,20000101,70"]
    path = tmp_path / "RECEIPTC.UKE"
    _write_uke(path, head + [",".join(c) for c in lines])
    _check(list(uke.read(path)), uke.LAYOUT)


@pytest.mark.parametrize(
    ("module", "sample"), [(mch_csv, "mch.csv"), (vaccination_csv, "vaccination.csv")]
)
@SETTINGS
@given(data=st.data())
def test_a_mutated_csv_never_crashes_the_reader(
    tmp_path: Path, module, sample: str, data: st.DataObject
) -> None:  # type: ignore[no-untyped-def]
    raw = (SAMPLES / sample).read_bytes()
    text = raw.decode(detect_encoding(raw))
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    for _ in range(data.draw(st.integers(1, 4))):
        row = body[data.draw(st.integers(0, len(body) - 1))]
        row[data.draw(st.integers(0, len(header) - 1))] = data.draw(CELL)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([header, *body])
    path = tmp_path / sample
    path.write_bytes(buf.getvalue().encode("utf-8"))
    items = list(module.read(path))
    _check(items, frozenset(module.HEADERS))
    assert len(items) == len(body)  # one Record or Problem per row, whatever the row holds


def test_every_field_a_uke_parser_names_is_in_the_layout() -> None:
    """Problems name fields by lookup in uke.LAYOUT (anything else becomes `-`); this keeps
    the list complete, so no real field name is ever lost to that guard."""
    sources = [p.read_text(encoding="utf-8") for p in Path(uke.__file__).parent.glob("*.py")]
    names = {
        node.value
        for source in sources
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z]{2}\.\S+", node.value)
    }
    assert names and names <= uke.LAYOUT, names - uke.LAYOUT
    for rt in ("IR", "YK"):
        assert f"{rt}.点数表" in uke.LAYOUT and f"{rt}.都道府県" in uke.LAYOUT


# --- the rules the generated inputs found broken -------------------------------------------


@pytest.mark.parametrize("value", ["①", "1②", "²", "٣", "１２", "9" * 10])
def test_uke_numbers_are_ascii_digits(value: str) -> None:
    with pytest.raises(RowError) as exc:
        uke_fields.integer(["HO", "x", "x", "x", value], 5, "HO.診療実日数")
    assert exc.value.field == "HO.診療実日数"


@pytest.mark.parametrize("value", ["2025031①", "20250①", "٢٠٢٥٠٣٠١", "99991231", "18671231"])
def test_uke_dates_with_odd_digits_or_out_of_range_are_row_errors(value: str) -> None:
    with pytest.raises(RowError):
        if len(value) in (5, 6):
            uke.parse_year_month(value, "RE.診療年月")
        else:
            uke.parse_date(value, "SY.診療開始日")


@pytest.mark.parametrize(
    "value", ["9999-12-31", "99991231", "1867-12-31", "2200-01-01", "２０２５-0①-01"]
)
def test_csv_dates_outside_the_platform_range_are_refused(value: str) -> None:
    with pytest.raises(RowError) as exc:
        parse_iso_date(value, "接種日")
    assert exc.value.field == "接種日"


def test_csv_dates_still_read_every_documented_form() -> None:
    for v in ("2025-04-01", "2025/04/01", "20250401", "２０２５-０４-０１"):
        assert parse_iso_date(v, "f") == date(2025, 4, 1)


@pytest.mark.parametrize(
    "code",
    [
        "'; DROP TABLE residents; --",
        "071499238",
        "07149923830",
        "4814992383",
        "0754992383",
        "07①4992383",
    ],
)
def test_facility_codes_must_have_their_shape(tmp_path: Path, code: str) -> None:
    path = tmp_path / "vaccination.csv"
    row = ["V1", "1000000001", "2025-04-01", "MR", "1期", "1", "AB12", "", code]
    buf = io.StringIO()
    csv.writer(buf).writerows([vaccination_csv.HEADERS, row, [*row[:8], "０７１４９９２３８３"]])
    path.write_text(buf.getvalue(), encoding="utf-8")
    bad, good = list(vaccination_csv.read(path))
    assert isinstance(bad, Problem) and bad.field == "接種医療機関コード"
    assert isinstance(good, Record) and good.data["facility"] == "0714992383"
    assert "DROP" not in bad.reason


def test_unknown_records_and_stray_free_text_name_no_value(tmp_path: Path) -> None:
    lines = _uke_lines("RECEIPTC.UKE")
    re_at = next(i for i, x in enumerate(lines) if x.startswith("RE,"))
    lines.insert(re_at, f"{MARK}福島県会津若松市追手町1番1号 山田 花子,電話")  # outside a receipt
    lines.insert(re_at + 3, f"{MARK}続きの自由記載 東京都千代田区1-1")  # inside one
    path = tmp_path / "RECEIPTC.UKE"
    _write_uke(path, lines)
    problems = [p for p in uke.read(path) if isinstance(p, Problem)]
    assert [(p.line, p.field, p.reason) for p in problems] == [
        (re_at + 1, uke.RECORD_TYPE, "record outside a receipt"),
        (re_at + 4, uke.RECORD_TYPE, "unknown record type"),  # rejects its receipt
    ]
    text = repr(problems)
    assert MARK not in text and "山田" not in text and "千代田" not in text
