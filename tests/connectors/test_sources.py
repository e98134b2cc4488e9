"""Readers: both encodings, era dates, malformed rows reported with file, line, field and reason
(never the content), UKE receipts grouped and streamed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connectors.sources import mch_csv, uke, vaccination_csv
from connectors.sources.base import Problem, Record, RowError, detect_encoding

HEADER = ",".join(mch_csv.HEADERS)


def _row(**kv: str) -> str:
    return ",".join(kv.get(h, "") for h in mch_csv.HEADERS)


GOOD = [
    _row(
        記録番号="R1",
        記録種別="妊婦健診",
        住民番号="1000000001",
        実施日="2025-04-01",
        医療機関コード="0712345678",
        妊娠週数="20",
        妊娠日数="3",
        体重="56.2",
        子宮底長="18.5",
        収縮期血圧="112",
        拡張期血圧="70",
        尿蛋白="-",
        尿糖="±",
        浮腫="+",
    ),
    _row(
        記録番号="R2",
        記録種別="出産",
        住民番号="1000000002",
        母住民番号="1000000001",
        実施日="2025/09/01",
        妊娠週数="39",
        出生体重="3120",
        身長="49.5",
        頭囲="33.0",
        胸囲="32.1",
        アプガー1分="8",
        アプガー5分="9",
        分娩方法="経膣分娩",
        性別="女",
    ),
    _row(
        記録番号="R3",
        記録種別="乳幼児健診",
        住民番号="1000000002",
        母住民番号="1000000001",
        実施日="20251215",
        健診区分="3～4か月",
        体重="6.45",
        身長="61.2",
        頭囲="40.1",
        判定="健康",
    ),
]


def _write(path: Path, lines: list[str], encoding: str) -> Path:
    path.write_bytes(("\r\n".join([HEADER, *lines]) + "\r\n").encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_mch_csv_reads_both_encodings_the_same(tmp_path: Path, encoding: str) -> None:
    path = _write(tmp_path / "mch.csv", GOOD, encoding)
    items = list(mch_csv.read(path))
    assert all(isinstance(i, Record) for i in items), items
    assert [i.kind for i in items] == ["prenatal_checkup", "delivery", "infant_checkup"]  # type: ignore[union-attr]
    pre, birth, infant = items
    assert pre.data["weight_kg"] == 56.2 and pre.data["urine_glucose"] == "trace"  # type: ignore[union-attr]
    assert birth.data["date"] == date(2025, 9, 1) and birth.data["mother"] == "1000000001"  # type: ignore[union-attr]
    assert infant.data["checkup"] == ("3-4m", "3～4か月児健診")  # type: ignore[union-attr]
    assert [i.line for i in items] == [2, 3, 4]


def test_encoding_detection() -> None:
    text = "記録番号,記録種別\r\n".encode
    assert detect_encoding(text("cp932")) == "cp932"
    assert detect_encoding(text("utf-8")) == "utf-8-sig"
    # A multi-byte character cut at the end of the sniffed head is still UTF-8.
    assert detect_encoding(text("utf-8") + "体".encode()[:2]) == "utf-8-sig"


def test_malformed_rows_are_reported_with_line_field_reason_and_no_content(tmp_path: Path) -> None:
    bad = [
        GOOD[0],
        _row(記録番号="R9", 記録種別="妊婦健診", 住民番号="1000000009", 実施日="2025-13-01"),
        _row(
            記録番号="R10",
            記録種別="妊婦健診",
            住民番号="1000000010",
            実施日="2025-04-01",
            体重="999",
        ),
        _row(記録番号="R11", 記録種別="謎", 住民番号="1000000011", 実施日="2025-04-01"),
        "R12,妊婦健診,1000000012",  # too few fields
        _row(
            記録番号="R13",
            記録種別="乳幼児健診",
            住民番号="1000000013",
            実施日="2025-04-01",
            健診区分="2歳",
        ),
        GOOD[2],
    ]
    path = _write(tmp_path / "mch.csv", bad, "cp932")
    # A line with bytes that are not CP932 (0x81 0x20 is no character).
    raw = path.read_bytes().replace(b"R13,", b"R13\x81\x20,")
    path.write_bytes(raw)
    items = list(mch_csv.read(path))
    problems = [i for i in items if isinstance(i, Problem)]
    records = [i for i in items if isinstance(i, Record)]
    assert [r.key for r in records] == ["R1", "R3"]
    got = {(p.line, p.field) for p in problems}
    assert got == {(3, "実施日"), (4, "体重"), (5, "記録種別"), (6, "-"), (7, "-")}
    by_line = {p.line: p for p in problems}
    assert by_line[4].reason.startswith("out of range")
    assert "header has" in by_line[6].reason
    assert "cp932" in by_line[7].reason
    for p in problems:
        assert p.file == "mch.csv"
        for secret in ("1000000009", "1000000010", "999", "謎", "2025-13-01"):
            assert secret not in p.reason and secret not in p.field


def test_vaccination_rows(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        ",".join(vaccination_csv.HEADERS) + "\n"
        "V1,1000000001,2025-06-01,五種混合,1期初回,1,AB123,BIKEN,0712345678\n"
        "V2,1000000001,2025-06-01,UNKNOWN,1期初回,1,,,\n"
        "V3,1000000001,2025-06-01,MR,1期,９,,,\n",
        encoding="utf-8",
    )
    items = list(vaccination_csv.read(path))
    assert isinstance(items[0], Record) and items[0].data["vaccine"] == "DPT-IPV-Hib"
    assert [(p.line, p.field) for p in items[1:] if isinstance(p, Problem)] == [
        (3, "ワクチン"),
        (4, "回数"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20250401", date(2025, 4, 1)),
        ("5070401", date(2025, 4, 1)),  # 令和7年
        ("4310430", date(2019, 4, 30)),  # 平成31年
        ("5010501", date(2019, 5, 1)),  # 令和元年
        ("3640107", date(1989, 1, 7)),  # 昭和64年
        ("4010108", date(1989, 1, 8)),  # 平成元年
    ],
)
def test_era_dates(value: str, expected: date) -> None:
    assert uke.parse_date(value, "f") == expected


@pytest.mark.parametrize(
    "value", ["5010430", "4010107", "9070401", "5000101", "202502300", "2025023"]
)
def test_bad_era_dates(value: str) -> None:
    with pytest.raises(RowError):
        uke.parse_date(value, "f")


def test_year_months() -> None:
    assert uke.parse_year_month("202503", "f") == (2025, 3)
    assert uke.parse_year_month("50703", "f") == (2025, 3)
    with pytest.raises(RowError):
        uke.parse_year_month("202513", "f")


def _uke(lines: list[str]) -> bytes:
    return b"".join((x + "\r\n").encode("cp932") for x in lines) + b"\x1a"


RE = "RE,{n},1112,50703,山田 太郎,1,3500101,70" + "," * 30
CLAIM = [
    "HO,070284,12,345678,2,500,,,,,,150,,,",
    "SN,1,01,070284,12,345678,01,,",
    "SY,8840107,5070301,1,,,01,",
    "SY,0000999,20250302,2,,かぜ症候群,,",
    "SI,12,1,112007410,,73,2,,,,,,," + ",".join("1" if d in (3, 17) else "" for d in range(1, 32)),
    "IY,21,1,620000023,3,12,1,,,,,,," + "," * 30,
    "CO,12,1,820100001,自由記載のコメント",
]


def test_uke_medical_file_streams_receipts(tmp_path: Path) -> None:
    path = tmp_path / "RECEIPTC.UKE"
    path.write_bytes(
        _uke(
            [
                "IR,2,07,1,1234567,,テスト医院,50704,00,",
                RE.format(n=1),
                *CLAIM,
                RE.format(n=2),
                *CLAIM,
                "GO,2,1000,99",
            ]
        )
    )
    items = list(uke.read(path))
    assert len(items) == 2 and all(isinstance(i, Record) for i in items)
    rec = items[0]
    assert isinstance(rec, Record)
    d = rec.data
    assert d["header"]["facility10"] == "0711234567" and d["header"]["billing"] == (2025, 4)
    assert d["re"]["ym"] == (2025, 3)
    assert rec.resident == "070284|12|345678|01"
    assert [s["start"] for s in d["sy"]] == [date(2025, 3, 1), date(2025, 3, 2)]
    assert d["sy"][1]["name"] == "かぜ症候群" and d["sy"][0]["primary"]
    assert d["si"][0]["days"] == [3, 17]
    assert "山田" not in repr(d) and "自由記載" not in repr(d)  # name and free text are dropped


def test_uke_bad_line_rejects_its_receipt_only(tmp_path: Path) -> None:
    path = tmp_path / "RECEIPTC.UKE"
    bad_claim = [*CLAIM[:2], "SY,88401,5070301,1,,,01,", *CLAIM[3:]]
    path.write_bytes(
        _uke(
            [
                "IR,2,07,1,1234567,,テスト医院,202504,00,",
                RE.format(n=1),
                *bad_claim,
                RE.format(n=2),
                *CLAIM,
                "GO,2,1000,99",
            ]
        )
    )
    items = list(uke.read(path))
    assert isinstance(items[0], Problem)
    assert (items[0].line, items[0].field) == (5, "SY.傷病名コード")
    assert "88401" not in items[0].reason
    assert isinstance(items[1], Record) and items[1].line == 10


def test_uke_truncated_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "RECEIPTC.UKE"
    path.write_bytes(_uke(["IR,2,07,1,1234567,,テスト医院,202504,00,", RE.format(n=1), *CLAIM]))
    items = list(uke.read(path))
    assert isinstance(items[0], Record)
    assert isinstance(items[-1], Problem) and items[-1].field == "GO"


PHARMACY = [
    # YK: no 予備 after the 薬局コード, so the name is field 6 and 請求年月 field 7
    "YK,2,07,4,7654321,テスト薬局,202504,00,0242000000",
    # RE: 9 特記事項, 10–12 the prescribing facility (都道府県, 点数表, 医療機関コード),
    # 13 its name, 15–34 保険医氏名 (never read), 42 カタカナ氏名
    "RE,1,4112,202503,山田 太郎,1,19500101,70,,07,1,1234567,テスト医院,,医師 一郎" + "," * 27,
    # HO: 5 処方箋受付回数, 6 合計点数, 10 一部負担金, 12 減免区分
    "HO,070284,12,345678,2,300,,,,90,,,,",
    "SN,1,01,070284,12,345678,01,,",
    # SH: 処方No, 剤形, 用法, 特別指示, 単位薬剤料
    "SH,01,1,,,12",
    # CZ: 医師No, 交付年月日, 調剤年月日, 受付回, 調剤数量, 負担区分, 算定区分, 算定先No,
    # 薬剤調製料コード, 点数, 分割区分, 前回数量, 薬剤料点数
    # 予備 (15), then 加算料①–⑩ … 薬剤料減算 left empty: 71 fields (docs/uke.md, [T] and [G])
    "CZ,1,20250309,20250310,1,14,1,1,01,420000110,24,,,168," + "," * 56,
    # IY: 負担区分, 医薬品コード, 使用量, 予備, 予備, 混合区分, 枝番, 配合不適, 1回用量
    "IY,1,620000023,3,,,,,,1",
    "IY,1,621930001,1.5,,,,,,",
    "SH,02,1,,,5",
    "CZ,1,20250309,5070312,1,7,1,1,01,420000110,24,,,35," + "," * 56,  # 和暦 調剤年月日
    "IY,1,610409330,2,,,,,,",
    "CO,820100001,自由記載",
    "KI,20250310,1,1,420000001,42",
    "GO,1,300,99",
]


def test_uke_pharmacy_file(tmp_path: Path) -> None:
    path = tmp_path / "RECEIPTY.UKE"
    path.write_bytes(_uke(PHARMACY))
    (rec,) = list(uke.read(path))
    assert isinstance(rec, Record) and rec.kind == "pharmacy"
    d = rec.data
    assert d["header"]["facility10"] == "0747654321"
    assert d["header"]["facility_name"] == "テスト薬局" and d["header"]["billing"] == (2025, 4)
    assert d["re"]["prescriber10"] == "0711234567" and d["re"]["ym"] == (2025, 3)
    assert d["ho"]["days"] == 2 and d["ho"]["points"] == 300 and d["ho"]["copay"] == 90
    first, second = d["rx"]
    assert (first["no"], first["form"]) == ("01", "1")
    assert first["cz"][0]["issued"] == date(2025, 3, 9)
    assert first["cz"][0]["dispensed"] == date(2025, 3, 10)
    assert first["cz"][0]["days_supply"] == 14 and first["cz"][0]["fee_code"] == "420000110"
    assert [iy["code"] for iy in first["iy"]] == ["620000023", "621930001"]
    assert first["iy"][1]["amount"] == 1.5
    assert second["cz"][0]["dispensed"] == date(2025, 3, 12)
    assert [iy["code"] for iy in second["iy"]] == ["610409330"]
    assert d["co"] == [{"section": None, "code": "820100001"}]
    assert "医師 一郎" not in repr(d) and "山田" not in repr(d) and "自由記載" not in repr(d)


def test_uke_pharmacy_records_out_of_place_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "RECEIPTY.UKE"
    cz_first = [*PHARMACY[:4], PHARMACY[5], PHARMACY[4], *PHARMACY[6:]]  # a CZ before any SH
    path.write_bytes(_uke(cz_first))
    (problem,) = list(uke.read(path))
    assert isinstance(problem, Problem) and problem.field == "CZ" and "SH" in problem.reason
    # 医科-style IY (the code one field early) in a 調剤 file, with the 調剤 IY's 10 fields
    medical_iy = [*PHARMACY[:6], "IY,620000023,3" + "," * 7, *PHARMACY[7:]]
    path.write_bytes(_uke(medical_iy))
    (problem,) = list(uke.read(path))
    assert isinstance(problem, Problem) and problem.field == "IY.医薬品コード"
