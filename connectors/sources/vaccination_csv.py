"""The vaccination register (予防接種台帳) export: one CSV row per dose given.
See docs/vaccination_csv.md."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from connectors.sources.base import (
    Problem,
    Record,
    RowError,
    ascii_digits,
    facility_code,
    optional,
    parse_iso_date,
    read_rows,
    required,
    wide_to_ascii,
)

SOURCE = "vaccination"

# Local antigen-series codes (as mch.md §7 recommends for scheduling) → Japanese display and
# target diseases. Product codes (HOT9 / YJ) are carried when the register has them.
VACCINES: dict[str, tuple[str, tuple[str, ...]]] = {
    "HepB": ("B型肝炎", ("B型肝炎",)),
    "Rota1": ("ロタウイルス（1価）", ("ロタウイルス感染症",)),
    "Rota5": ("ロタウイルス（5価）", ("ロタウイルス感染症",)),
    "DPT-IPV-Hib": ("五種混合", ("ジフテリア", "百日せき", "破傷風", "ポリオ", "Hib感染症")),
    "DPT-IPV": ("四種混合", ("ジフテリア", "百日せき", "破傷風", "ポリオ")),
    "Hib": ("ヒブ", ("Hib感染症",)),
    "PCV15": ("小児用肺炎球菌（15価）", ("小児の肺炎球菌感染症",)),
    "PCV20": ("小児用肺炎球菌（20価）", ("小児の肺炎球菌感染症",)),
    "BCG": ("BCG", ("結核",)),
    "MR": ("麻しん風しん混合", ("麻しん", "風しん")),
    "VZV": ("水痘", ("水痘",)),
    "JE": ("日本脳炎", ("日本脳炎",)),
    "DT": ("二種混合", ("ジフテリア", "破傷風")),
    "HPV": ("ヒトパピローマウイルス", ("HPV感染症",)),
    "RSV-maternal": ("RSウイルス（母子免疫）", ("RSウイルス感染症",)),
}
_BY_NAME = {v[0]: k for k, v in VACCINES.items()}

SERIES = {"1期初回", "1期追加", "1期", "2期", "初回", "追加", "-"}
# A manufacturer's lot number: letters, digits and `-./` (e.g. `JE283`, `SA-0123`). It is sent
# as Immunization.lotNumber, so nothing else from the cell may ride along with it.
LOT = re.compile(r"[A-Za-z0-9][A-Za-z0-9./-]{0,19}")

HEADERS = [
    "記録番号",
    "住民番号",
    "接種日",
    "ワクチン",
    "期別",
    "回数",
    "ロット番号",
    "製造販売業者",
    "接種医療機関コード",
]


def parse_row(line: int, row: dict[str, str]) -> Record:
    key = required(row, "記録番号")
    resident = required(row, "住民番号")
    when = parse_iso_date(required(row, "接種日"), "接種日")
    vaccine = unicodedata.normalize("NFKC", required(row, "ワクチン"))
    vaccine = _BY_NAME.get(vaccine, vaccine)
    if vaccine not in VACCINES:
        raise RowError("ワクチン", "unknown vaccine code")
    series = optional(row, "期別") or "-"
    series = unicodedata.normalize("NFKC", series)
    if series not in SERIES:
        raise RowError("期別", "not one of " + ", ".join(sorted(SERIES)))
    dose_raw = wide_to_ascii(required(row, "回数"))
    if len(dose_raw) > 2 or not ascii_digits(dose_raw) or not 1 <= int(dose_raw) <= 5:
        raise RowError("回数", "not a dose number 1–5")
    lot = optional(row, "ロット番号")
    if lot is not None:
        lot = unicodedata.normalize("NFKC", lot)
        if not LOT.fullmatch(lot) or not lot.isascii():
            raise RowError("ロット番号", "not a lot number (letters, digits, - . /)")
    return Record(
        SOURCE,
        "immunization",
        line,
        key,
        resident,
        {
            "date": when,
            "vaccine": vaccine,
            "series": series,
            "dose": int(dose_raw),
            "lot": lot,
            "manufacturer": optional(row, "製造販売業者"),
            "facility": facility_code(row, "接種医療機関コード"),
        },
    )


def read(path: Path, encoding: str | None = None) -> Iterator[Record | Problem]:
    """Stream the file: one Record or Problem per data row."""
    return read_rows(path, parse_row, HEADERS, encoding)
