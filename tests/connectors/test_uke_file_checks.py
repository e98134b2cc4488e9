"""Issue 18, "the file's encoding is hoped, not checked" and "broken files pass": a UKE file
in UTF-8 is refused with a message saying so; every record whose field count the 記録条件仕様
fixes is checked (a record with one field fewer or more rejects its receipt with file, line,
field and reason); a file without its GO record is reported at its real last line; empty
exports are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sources import uke, vaccination_csv
from connectors.sources.base import Problem, Record

# Written from the record layouts, not from the reader: 医科 shared/reference/uke.md §5
# (verified against myclinic-ts and OpenReceiptViewer), 調剤 docs/uke.md ([T] pharma-oss@8091090f;
# CZ 71 also [G], the pharmacy's UKE loader and its generator).
MEDICAL = {
    "IR": 10, "RE": 38, "HO": 15, "KO": 12, "SN": 9, "JD": 33, "MF": 33, "SY": 8, "SI": 44,
    "IY": 44, "TO": 48, "CO": 5, "SJ": 3, "GO": 4,
}  # fmt: skip
PHARMACY = {"YK": 9, "RE": 42, "SN": 9, "CZ": 71, "IY": 10, "GO": 4}


def _pad(cells: list[str], n: int) -> str:
    return ",".join(cells + [""] * (n - len(cells)))


GOOD_MEDICAL = [
    _pad(["IR", "2", "07", "1", "1234567", "", "テスト医院", "202504", "00"], 10),
    _pad(["RE", "1", "1112", "202503", "テスト", "1", "19800101", "70"], 38),
    _pad(["HO", "06070010", "12", "3456", "1", "300"], 15),
    _pad(["KO", "81070285", "", "", "1", "300"], 12),
    _pad(["SN", "1", "01", "06070010", "12", "3456", "00"], 9),
    _pad(["JD", "1"], 33),
    _pad(["MF", "1"], 33),
    _pad(["SY", "8840107", "20250301", "1", "", "", "01"], 8),
    _pad(["SI", "12", "1", "112007410", "", "73", "1"], 44),
    _pad(["IY", "21", "1", "620000023", "1", "12", "1"], 44),
    _pad(["TO", "40", "1", "700590000", "", "30", "1"], 48),
    _pad(["CO", "90", "1", "810000001"], 5),
    _pad(["SJ", "01", "詳記"], 3),
    _pad(["GO", "1", "300", "99"], 4),
]
GOOD_PHARMACY = [
    _pad(["YK", "2", "07", "4", "7654321", "テスト薬局", "202504", "00"], 9),
    _pad(["RE", "1", "4112", "202503", "テスト", "1", "19800101", "70"], 42),
    _pad(["HO", "06070010", "12", "3456", "1", "300"], 14),
    _pad(["SN", "1", "01", "06070010", "12", "3456", "00"], 9),
    _pad(["SH", "01", "1", "", "", "12"], 6),
    _pad(["CZ", "1", "20250309", "20250310", "1", "14", "1", "1", "01", "420000110", "24"], 71),
    _pad(["IY", "1", "620000023", "3"], 10),
    _pad(["GO", "1", "300", "99"], 4),
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes("".join(x + "\r\n" for x in lines).encode("cp932") + b"\x1a")
    return path


def _problems(path: Path) -> list[Problem]:
    return [i for i in uke.read(path) if isinstance(i, Problem)]


@pytest.mark.parametrize(
    ("good", "counts"), [(GOOD_MEDICAL, MEDICAL), (GOOD_PHARMACY, PHARMACY)], ids=["医科", "調剤"]
)
def test_every_record_types_field_count_is_checked(
    tmp_path: Path, good: list[str], counts: dict[str, int]
) -> None:
    path = tmp_path / "RECEIPTC.UKE"
    items = list(uke.read(_write(path, good)))
    assert [type(i) for i in items] == [Record], items
    assert set(counts) <= {x.split(",")[0] for x in good}  # every counted record type is here
    for i, line in enumerate(good):
        rt = line.split(",")[0]
        if rt not in counts:  # 調剤 HO, SH: no count two sources agree on (docs/uke.md)
            continue
        for wrong in (line[: line.rindex(",")], line + ","):  # one field fewer, one more
            lines = [*good[:i], wrong, *good[i + 1 :]]
            problems = _problems(_write(path, lines))
            n = wrong.count(",") + 1
            want = Problem(
                path.name, i + 1, rt, f"{n} fields; the 記録条件仕様 defines {counts[rt]}"
            )
            assert want in problems, (rt, n, problems)


def test_pharmacy_sh_and_cz_as_the_reiwa8_spec_writes_them_are_read(tmp_path: Path) -> None:
    """[T] (pharma-oss@8091090f, 記録条件仕様 調剤 令和8年6月版) writes SH with 10 fields (四つの
    公費単位薬剤料 after 単位薬剤料) and CZ with 71 (加算料①–⑩, 調剤管理料, …; [H] names
    加算料①–⑩ too): such a receipt was rejected while SH 6 / CZ 15 were counted."""
    lines = [*GOOD_PHARMACY]
    lines[4] = _pad(lines[4].split(","), 10)
    lines[5] = _pad(lines[5].split(","), 71)
    items = list(uke.read(_write(tmp_path / "RECEIPTY.UKE", lines)))
    assert [type(i) for i in items] == [Record], items


def test_a_pharmacy_cz_cut_to_the_15_fields_the_reader_uses_is_rejected(tmp_path: Path) -> None:
    """Rule "調剤 CZ 71 fields" ([T] pharma-oss@8091090f DISPENSING_UKE_OFFICIAL_CZ_ALL_FIELDS and
    [G] "CZ: 調剤情報レコード（SSK仕様 71フィールド）" agree): the 15-field CZ the samples and the
    synthetic files wrote until 2026-12 is a cut record; the other receipts are still read."""
    lines = [*GOOD_PHARMACY]
    short = ",".join(lines[5].split(",")[:15])
    lines[5:6] = [short]
    second = [
        _pad(["RE", "2", "4112", "202503", "テスト", "2", "19900101", "70"], 42),
        *GOOD_PHARMACY[2:-1],
    ]
    path = _write(tmp_path / "RECEIPTY.UKE", [*lines[:-1], *second, lines[-1]])
    items = list(uke.read(path))
    assert items[0] == Problem(path.name, 6, "CZ", "15 fields; the 記録条件仕様 defines 71")
    assert [type(i) for i in items[1:]] == [Record]


def test_an_re_record_with_12_fields_is_rejected(tmp_path: Path) -> None:
    lines = [*GOOD_MEDICAL]
    lines[1] = ",".join(lines[1].split(",")[:12])
    path = _write(tmp_path / "RECEIPTC.UKE", lines)
    items = list(uke.read(path))
    assert items == [Problem(path.name, 2, "RE", "12 fields; the 記録条件仕様 defines 38")]


def test_a_file_without_go_is_reported_at_its_last_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "RECEIPTC.UKE", GOOD_MEDICAL[:-1])
    items = list(uke.read(path))
    assert isinstance(items[0], Record)
    assert items[1:] == [Problem(path.name, 13, "GO", "file ends without a GO record (truncated?)")]


def test_empty_exports_are_errors(tmp_path: Path) -> None:
    for content in (b"", b"\r\n\x1a"):
        path = tmp_path / "RECEIPTC.UKE"
        path.write_bytes(content)
        (p,) = list(uke.read(path))
        assert (
            isinstance(p, Problem)
            and (p.line, p.field) == (1, "-")
            and p.reason.startswith("the file is empty")
        )
    csv = tmp_path / "vaccination.csv"
    csv.write_bytes(b"")
    (p,) = list(vaccination_csv.read(csv))
    assert isinstance(p, Problem) and p.line == 1 and p.reason.startswith("the file is empty")


def test_utf8_files_are_refused_with_a_message(tmp_path: Path) -> None:
    text = "".join(x + "\r\n" for x in GOOD_MEDICAL)
    path = tmp_path / "RECEIPTC.UKE"
    path.write_bytes(text.encode("utf-8"))
    assert list(uke.read(path)) == [
        Problem(
            path.name,
            1,
            "-",
            "the file is UTF-8 with non-ASCII text; UKE files are Shift_JIS (CP932): export again",
        )
    ]
    # the non-ASCII text first appears on line 2 here
    path.write_bytes(("IR,2,07,1,1234567,,,202504,00,\r\n" + text.split("\r\n", 1)[1]).encode())
    (p,) = list(uke.read(path))
    assert isinstance(p, Problem) and p.line == 2 and "UTF-8" in p.reason
    # a byte order mark, even before plain ASCII
    path.write_bytes(b"\xef\xbb\xbf" + b"IR,2,07,1,1234567,,,202504,00,\r\n")
    (p,) = list(uke.read(path))
    assert isinstance(p, Problem) and p.line == 1 and "byte order mark" in p.reason
    # the same text in CP932 reads
    path.write_bytes(text.encode("cp932"))
    assert [type(i) for i in uke.read(path)] == [Record]
