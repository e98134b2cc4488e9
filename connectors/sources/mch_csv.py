"""Maternal and child health handbook (母子健康手帳) records exported by the health-management
system as one CSV file (UTF-8 or Shift_JIS/CP932, Japanese headers). See docs/mch_csv.md."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

from connectors.sources.base import (
    Problem,
    Record,
    RowError,
    choice,
    facility_code,
    number,
    optional,
    parse_iso_date,
    read_rows,
    required,
)

SOURCE = "mch"

KINDS = {
    "妊娠届出": "pregnancy_registration",
    "妊婦健診": "prenatal_checkup",
    "出産": "delivery",
    "乳幼児健診": "infant_checkup",
}

# 健診区分 → (local code, display). The statutory ones are 1歳6か月 and 3歳 (母子保健法).
CHECKUPS = {
    "1か月": ("1m", "1か月児健診"),
    "3-4か月": ("3-4m", "3～4か月児健診"),
    "6-7か月": ("6-7m", "6～7か月児健診"),
    "9-10か月": ("9-10m", "9～10か月児健診"),
    "1歳6か月": ("18m", "1歳6か月児健診"),
    "3歳": ("3y", "3歳児健診"),
}
_CHECKUP_ALIASES = {k.replace("-", "～"): k for k in CHECKUPS} | {
    k.replace("-", "~"): k for k in CHECKUPS
}

DIPSTICK = {"-": "neg", "±": "trace", "+": "1+", "++": "2+", "+++": "3+"}
JUDGEMENT = {"健康": "healthy", "要観察": "observe", "要精査": "refer"}
DELIVERY = {
    "経膣分娩": "vaginal",
    "帝王切開": "cesarean",
    "吸引分娩": "vacuum",
    "鉗子分娩": "forceps",
}
SEX = {"男": "male", "女": "female", "1": "male", "2": "female"}

HEADERS = [
    "記録番号",
    "記録種別",
    "住民番号",
    "母住民番号",
    "実施日",
    "医療機関コード",
    "健診区分",
    "妊娠週数",
    "妊娠日数",
    "体重",
    "身長",
    "頭囲",
    "胸囲",
    "腹囲",
    "子宮底長",
    "収縮期血圧",
    "拡張期血圧",
    "尿蛋白",
    "尿糖",
    "浮腫",
    "出産予定日",
    "分娩方法",
    "出生体重",
    "アプガー1分",
    "アプガー5分",
    "性別",
    "判定",
]


def _checkup(row: dict[str, str]) -> tuple[str, str]:
    raw = required(row, "健診区分")
    key = unicodedata.normalize("NFKC", raw).replace("~", "-").replace("～", "-")
    key = _CHECKUP_ALIASES.get(key, key)
    if key not in CHECKUPS:
        raise RowError("健診区分", "not one of " + ", ".join(CHECKUPS))
    return CHECKUPS[key]


def parse_row(line: int, row: dict[str, str]) -> Record:
    """One CSV row → a Record; raises RowError naming the field."""
    kind_raw = required(row, "記録種別")
    if kind_raw not in KINDS:
        raise RowError("記録種別", "not one of " + ", ".join(KINDS))
    kind = KINDS[kind_raw]
    key = required(row, "記録番号")
    resident = required(row, "住民番号")
    when = parse_iso_date(required(row, "実施日"), "実施日")
    d: dict[str, object] = {"date": when, "facility": facility_code(row, "医療機関コード")}
    mother = optional(row, "母住民番号")
    if kind == "pregnancy_registration":
        edd = optional(row, "出産予定日")
        d["edd"] = parse_iso_date(edd, "出産予定日") if edd else None
    elif kind == "prenatal_checkup":
        d["ga_weeks"] = number(row, "妊娠週数", 0, 45, integer=True)
        d["ga_days"] = number(row, "妊娠日数", 0, 6, integer=True)
        d["weight_kg"] = number(row, "体重", 25, 200)
        d["fundal_cm"] = number(row, "子宮底長", 0, 60)
        d["abdominal_cm"] = number(row, "腹囲", 40, 200)
        d["sbp"] = number(row, "収縮期血圧", 50, 260, integer=True)
        d["dbp"] = number(row, "拡張期血圧", 20, 180, integer=True)
        if (d["sbp"] is None) != (d["dbp"] is None):
            raise RowError(
                "拡張期血圧" if d["dbp"] is None else "収縮期血圧",
                "blood pressure needs both values",
            )
        d["urine_protein"] = choice(row, "尿蛋白", DIPSTICK)
        d["urine_glucose"] = choice(row, "尿糖", DIPSTICK)
        d["edema"] = choice(row, "浮腫", DIPSTICK)
    elif kind == "delivery":
        if not mother:
            raise RowError("母住民番号", "a delivery record needs the mother")
        d["ga_weeks"] = number(row, "妊娠週数", 20, 45, integer=True)
        d["ga_days"] = number(row, "妊娠日数", 0, 6, integer=True)
        d["birth_weight_g"] = number(row, "出生体重", 200, 6500)
        d["length_cm"] = number(row, "身長", 20, 65)
        d["head_cm"] = number(row, "頭囲", 15, 45)
        d["chest_cm"] = number(row, "胸囲", 15, 45)
        d["apgar1"] = number(row, "アプガー1分", 0, 10, integer=True)
        d["apgar5"] = number(row, "アプガー5分", 0, 10, integer=True)
        d["method"] = choice(row, "分娩方法", DELIVERY)
        d["sex"] = choice(row, "性別", SEX)
    else:  # infant_checkup
        d["checkup"] = _checkup(row)
        d["weight_kg"] = number(row, "体重", 1, 40)
        d["height_cm"] = number(row, "身長", 30, 130)
        d["head_cm"] = number(row, "頭囲", 25, 60)
        d["chest_cm"] = number(row, "胸囲", 25, 80)
        d["judgement"] = choice(row, "判定", JUDGEMENT)
    d["mother"] = mother
    return Record(SOURCE, kind, line, key, resident, d)


def read(path: Path, encoding: str | None = None) -> Iterator[Record | Problem]:
    """Stream the file: one Record or Problem per data row."""
    return read_rows(path, parse_row, HEADERS, encoding)
