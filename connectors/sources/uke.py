"""NHI claims in the UKE receipt format (レセプト電算処理システム): 医科 and 調剤 files as the city
receives them as 国保保険者. CP932, CRLF, comma-separated without quoting, EOF byte 0x1A, dates
in 西暦 (YYYYMMDD / YYYYMM) or legacy 和暦 (GYYMMDD / GYYMM). See docs/uke.md.

The reader streams the file and yields one Record per receipt (RE up to the next RE or GO),
so memory stays flat however large the file. A bad line rejects its receipt (a partial claim
would mislead the person), is reported with its line, record field and reason, and the reader
goes on with the next receipt."""

from __future__ import annotations

import calendar
import codecs
import unicodedata
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from connectors.sources.base import (
    SNIFF_BYTES,
    UNREADABLE,
    Problem,
    Record,
    RowError,
    ascii_digits,
    in_range,
    safe_field,
    unexpected,
)

SOURCE = "uke"
ENCODING = "cp932"

# 年号区分 (legacy 別表4): era code → (first day of the era, Gregorian year of its year 1).
ERAS: dict[str, tuple[date, int]] = {
    "1": (date(1868, 1, 25), 1868),  # 明治 (year 1 counted from 1868-01-01)
    "2": (date(1912, 7, 30), 1912),  # 大正
    "3": (date(1926, 12, 25), 1926),  # 昭和
    "4": (date(1989, 1, 8), 1989),  # 平成
    "5": (date(2019, 5, 1), 2019),  # 令和
}


def parse_date(value: str, field: str) -> date:
    """`YYYYMMDD` (西暦) or `GYYMMDD` (和暦, era code G). The digit count tells them apart.
    Dates outside EARLIEST–LATEST (9999-12-31 as an open end) are refused."""
    v = value.strip()
    if len(v) not in (7, 8) or not ascii_digits(v):
        raise RowError(field, "not a date (YYYYMMDD or GYYMMDD)")
    try:
        if len(v) == 8:
            return in_range(date(int(v[:4]), int(v[4:6]), int(v[6:])), field)
        era = ERAS.get(v[0])
        if era is None:
            raise RowError(field, "unknown era code")
        d = date(era[1] + int(v[1:3]) - 1, int(v[3:5]), int(v[5:7]))
    except ValueError:
        raise RowError(field, "no such day") from None
    if int(v[1:3]) == 0 or d < era[0].replace(month=1, day=1) or (int(v[1:3]) == 1 and d < era[0]):
        raise RowError(field, "date outside its era")
    return in_range(d, field)


def parse_year_month(value: str, field: str) -> tuple[int, int]:
    """`YYYYMM` (西暦) or `GYYMM` (和暦) → (year, month)."""
    v = value.strip()
    if len(v) not in (5, 6) or not ascii_digits(v):
        raise RowError(field, "not a year-month (YYYYMM or GYYMM)")
    if len(v) == 6:
        y, m = int(v[:4]), int(v[4:])
    else:
        era = ERAS.get(v[0])
        if era is None:
            raise RowError(field, "unknown era code")
        if int(v[1:3]) == 0:
            raise RowError(field, "date outside its era")
        y, m = era[1] + int(v[1:3]) - 1, int(v[3:])
    if not 1 <= m <= 12 or not 1900 <= y <= 2200:
        raise RowError(field, "no such month")
    return y, m


def month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _f(cells: list[str], n: int) -> str:
    """Field n (1-based, counting the record type as 1). Records whose count the spec fixes are
    checked first (`FIELD_COUNTS`); for the others a missing trailing field reads empty."""
    return cells[n - 1].strip() if len(cells) >= n else ""


def _int(cells: list[str], n: int, name: str, *, required: bool = False) -> int | None:
    """A count or an amount: ASCII digits only (`①` is a digit to `isdigit`, not to `int`),
    at most 9 of them (no UKE field is longer)."""
    v = _f(cells, n)
    if not v:
        if required:
            raise RowError(name, "required but empty")
        return None
    if len(v) > 9 or not ascii_digits(v):
        raise RowError(name, "not a whole number")
    return int(v)


def _code(cells: list[str], n: int, name: str, digits: int) -> str:
    v = _f(cells, n)
    if len(v) != digits or not ascii_digits(v):
        raise RowError(name, f"not a {digits}-digit code")
    return v


def _section(cells: list[str], n: int, name: str) -> str:
    """診療識別: empty or 2 digits. It becomes a code in the claim item."""
    v = _f(cells, n)
    if v and (len(v) != 2 or not ascii_digits(v)):
        raise RowError(name, "not a 2-digit code")
    return v


def _amount(v: str, name: str) -> float | None:
    """使用量: a decimal written in ASCII digits (`float` reads `nan`, `1e9` or ３)."""
    if not v:
        return None
    whole, dot, frac = v.partition(".")
    if (
        len(whole) > 9
        or len(frac) > 9
        or not ascii_digits(whole)
        or (dot and not ascii_digits(frac))
    ):
        raise RowError(name, "not a number")
    return float(v)


def _days(cells: list[str], first: int) -> list[int]:
    """算定日情報: the days of the month (1–31) with a count."""
    out = []
    for day in range(1, 32):
        v = _f(cells, first + day - 1)
        if v and v != "0":
            out.append(day)
    return out


# --- record parsers (field numbers per uke.md §5; 調剤 per docs/uke.md: [T], [G], not the PDF) ---


def _header(cells: list[str], kind: str) -> dict[str, Any]:
    """IR (医科) or YK (調剤). They differ after the facility code: IR has a 予備 field (6), so
    its name is 7 and 請求年月 8; YK has none, so its name is 6 and 請求年月 7 (docs/uke.md)."""
    rt = "IR" if kind == "medical" else "YK"
    table = _f(cells, 4)
    if kind == "medical" and table != "1":
        raise RowError(f"{rt}.点数表", "only 1 (医科) is supported in an IR file")
    if kind == "pharmacy" and table != "4":
        raise RowError(f"{rt}.点数表", "a YK record must have 4 (調剤)")
    pref = _code(cells, 3, f"{rt}.都道府県", 2)
    if not 1 <= int(pref) <= 47:
        raise RowError(f"{rt}.都道府県", "not a prefecture code 01–47")
    if kind == "medical":
        code = _code(cells, 5, "IR.医療機関コード", 7)
        name, ym = _f(cells, 7), parse_year_month(_f(cells, 8), "IR.請求年月")
    else:
        code = _code(cells, 5, "YK.薬局コード", 7)
        name, ym = _f(cells, 6), parse_year_month(_f(cells, 7), "YK.請求年月")
    return {
        "kind": kind,
        "payer": _f(cells, 2),
        "prefecture": pref,
        "table": table,
        "facility": code,
        "facility10": pref + table + code,
        "facility_name": name,
        "billing": ym,
    }


def _re(cells: list[str], pharmacy: bool = False) -> dict[str, Any]:
    """RE. Fields 2–8 are shared; after them 医科 has 9 入院年月日 … 12 特記事項, while 調剤 has
    9 特記事項 and 10–12 the prescribing facility (都道府県, 点数表, 医療機関コード)."""
    no = _int(cells, 2, "RE.レセプト番号", required=True)
    rtype = _code(cells, 3, "RE.レセプト種別", 4)
    ym = parse_year_month(_f(cells, 4), "RE.調剤年月" if pharmacy else "RE.診療年月")
    sex = _f(cells, 6)
    if sex not in ("1", "2"):
        raise RowError("RE.男女区分", "not 1 or 2")
    parse_date(_f(cells, 7), "RE.生年月日")  # validated only; the register is the source of truth
    # Never read: 5 氏名, and the カタカナ氏名 (医科 37, 調剤 42); in 調剤 also 15–34 保険医氏名.
    out: dict[str, Any] = {"no": no, "type": rtype, "ym": ym, "sex": sex}
    out["benefit_rate"] = _f(cells, 8)
    if pharmacy:
        code = _f(cells, 12)
        if code and (len(code) != 7 or not ascii_digits(code)):
            raise RowError("RE.医療機関コード", "not a 7-digit code")
        if code and (len(_f(cells, 10)) != 2 or not ascii_digits(_f(cells, 10))):
            raise RowError("RE.都道府県", "not a 2-digit code")
        if code and (len(_f(cells, 11)) != 1 or not ascii_digits(_f(cells, 11))):
            raise RowError("RE.点数表", "not a 1-digit code")
        out["notes"] = _f(cells, 9)
        out["admitted"] = None
        out["prescriber10"] = (_f(cells, 10) + _f(cells, 11) + code) if code else None
        return out
    admit = _f(cells, 9)
    out["admitted"] = parse_date(admit, "RE.入院年月日") if admit else None
    out["notes"] = _f(cells, 12)
    return out


def _ho(cells: list[str], pharmacy: bool = False) -> dict[str, Any]:
    insurer = _f(cells, 2).replace(" ", "")
    if len(insurer) not in (6, 8) or not ascii_digits(insurer):
        raise RowError("HO.保険者番号", "not a 6- or 8-digit insurer number")
    if not _f(cells, 4):
        raise RowError("HO.被保険者証番号", "required but empty")
    return {
        "insurer": insurer,
        "symbol": unicodedata.normalize("NFKC", _f(cells, 3)),
        "number": unicodedata.normalize("NFKC", _f(cells, 4)),
        # 医科: 5 診療実日数, 12 負担金額; 調剤: 5 処方箋受付回数, 10 一部負担金
        "days": _int(cells, 5, "HO.処方箋受付回数" if pharmacy else "HO.診療実日数"),
        "points": _int(cells, 6, "HO.合計点数"),
        "copay": _int(cells, 10, "HO.一部負担金") if pharmacy else _int(cells, 12, "HO.負担金額"),
    }


def _ko(cells: list[str], pharmacy: bool = False) -> dict[str, Any]:
    payer = _code(cells, 2, "KO.負担者番号", 8)
    # KO.3 受給者番号 identifies the person; it is not kept.
    return {
        "payer": payer,
        "days": _int(cells, 5, "KO.処方箋受付回数" if pharmacy else "KO.診療実日数"),
        "points": _int(cells, 6, "KO.合計点数"),
    }


def _sy(cells: list[str]) -> dict[str, Any]:
    code = _code(cells, 2, "SY.傷病名コード", 7)
    mods = _f(cells, 5)
    if len(mods) % 4 or len(mods) > 80 or (mods and not ascii_digits(mods)):
        raise RowError("SY.修飾語コード", "not a run of 4-digit codes")
    outcome = _f(cells, 4) or "1"
    if outcome not in ("1", "2", "3", "4"):
        raise RowError("SY.転帰区分", "not 1–4")
    return {
        "code": code,
        "start": parse_date(_f(cells, 3), "SY.診療開始日"),
        "outcome": outcome,
        "modifiers": [mods[i : i + 4] for i in range(0, len(mods), 4)],
        "name": _f(cells, 6) if code == "0000999" else None,
        "primary": _f(cells, 7) == "01",
    }


def _si(cells: list[str]) -> dict[str, Any]:
    return {
        "section": _section(cells, 2, "SI.診療識別"),
        "burden": _f(cells, 3),
        "code": _code(cells, 4, "SI.診療行為コード", 9),
        "quantity": _f(cells, 5) or None,
        "points": _int(cells, 6, "SI.点数"),
        "times": _int(cells, 7, "SI.回数") or 1,
        "days": _days(cells, 14),
    }


def _iy(cells: list[str]) -> dict[str, Any]:
    amount = _amount(_f(cells, 5), "IY.使用量")
    return {
        "section": _section(cells, 2, "IY.診療識別"),
        "code": _code(cells, 4, "IY.医薬品コード", 9),
        "amount": amount,
        "points": _int(cells, 6, "IY.点数"),
        "times": _int(cells, 7, "IY.回数") or 1,
        "days": _days(cells, 14),
    }


def _to(cells: list[str]) -> dict[str, Any]:
    return {
        "section": _section(cells, 2, "TO.診療識別"),
        "code": _code(cells, 4, "TO.特定器材コード", 9),
        "points": _int(cells, 6, "TO.点数"),
        "times": _int(cells, 7, "TO.回数") or 1,
        "days": _days(cells, 18),
    }


def _co(cells: list[str]) -> dict[str, Any]:
    # The free text (CO.5) may describe the person; only the code is kept.
    return {
        "section": _section(cells, 2, "CO.診療識別"),
        "code": _code(cells, 4, "CO.コメントコード", 9),
    }


# 調剤 (pharmacy) records; positions per docs/uke.md ("調剤" section, with its sources).
def _sh(cells: list[str]) -> dict[str, Any]:
    """SH 処方基本: 2 処方No, 3 剤形, 4 用法, 5 特別指示 (free text: not kept), 6 単位薬剤料.
    It opens a prescription group: the CZ and IY records after it belong to it."""
    return {
        "no": _f(cells, 2),
        "form": _f(cells, 3),
        "usage": _f(cells, 4),
        "unit_points": _int(cells, 6, "SH.単位薬剤料"),
    }


def _cz(cells: list[str]) -> dict[str, Any]:
    """CZ 調剤情報: 2 医師No, 3 処方箋交付年月日, 4 調剤年月日, 5 処方箋受付回, 6 調剤数量,
    7 負担区分, 8 算定区分, 9 算定先No, 10 薬剤調製料コード, 11 その点数, … 14 薬剤料点数."""
    issued = _f(cells, 3)
    fee = _f(cells, 10)
    if fee and (len(fee) != 9 or not fee.isdigit()):
        raise RowError("CZ.薬剤調製料コード", "not a 9-digit code")
    return {
        "issued": parse_date(issued, "CZ.処方箋交付年月日") if issued else None,
        "dispensed": parse_date(_f(cells, 4), "CZ.調剤年月日"),
        "reception": _int(cells, 5, "CZ.処方箋受付回"),
        "days_supply": _int(cells, 6, "CZ.調剤数量"),
        "fee_code": fee or None,
        "fee_points": _int(cells, 11, "CZ.薬剤調製料点数"),
        "drug_points": _int(cells, 14, "CZ.薬剤料点数"),
    }


def _iy_pharmacy(cells: list[str]) -> dict[str, Any]:
    """IY (調剤): 2 負担区分, 3 医薬品コード, 4 使用量, 5–6 予備, 7 混合区分, 8 混合区分枝番,
    9 配合不適区分, 10 1回用量."""
    amount = _amount(_f(cells, 4), "IY.使用量")
    return {
        "burden": _f(cells, 2),
        "code": _code(cells, 3, "IY.医薬品コード", 9),
        "amount": amount,
        "points": None,
    }


def _to_pharmacy(cells: list[str]) -> dict[str, Any]:
    """TO (調剤): 2 負担区分, 3 特定器材コード, 4 使用量, 5 単位コード, 6 単価, 7 名称."""
    return {
        "section": None,
        "code": _code(cells, 3, "TO.特定器材コード", 9),
        "points": None,
        "times": 1,
        "days": [],
    }


def _co_pharmacy(cells: list[str]) -> dict[str, Any]:
    """CO (調剤): 2 コメントコード, 3 文字データ (free text: dropped)."""
    return {"section": None, "code": _code(cells, 2, "CO.コメントコード", 9)}


IGNORED = {
    "SN", "JD", "MF", "SJ", "MN", "RC", "KH", "JY", "EX", "HR", "TI", "TR", "TS", "GR",
    "KI", "TK", "ST", "ON",
}  # fmt: skip
RECORDS = {"IR", "YK", "RE", "HO", "KO", "SY", "SI", "IY", "TO", "CO", "SH", "CZ", "GO"} | IGNORED
# Fields per record (the record type counted as 1), as the 記録条件仕様 defines them: every
# field is written, an empty one as nothing between two commas, so a record with another count
# was cut or shifted and its values cannot be trusted. 医科: shared/reference/uke.md §5, layouts
# verified against [M] myclinic-ts and [O] OpenReceiptViewer (IR 10, RE 38, HO 15, KO 12, SN 9,
# JD 33, MF 33, SY 8, SI 44, IY 44, TO 48, CO 5, SJ 3, GO 4); implementations, not the PDF.
# 調剤: [T] pharma-oss/pharma-oss@8091090f src/lib/receipt/dispensing_uke_validation.ts, its
# transcription of the 支払基金 記録条件仕様 調剤 令和8年6月版 (YK 9, RE 42, SN 9, IY 10, GO 4).
# Not counted (docs/uke.md): 調剤 SH and CZ, where [T] writes 10 and 71 (the 6 and 15 used
# until 2026-12 were only the fields read; [H] also names CZ 加算料①–⑩, beyond field 15), and
# the 調剤 HO, KO, TO, CO, JD, MF, KI, TK, ST and insurer-side MN, RC, KH, … with one source or
# none; a missing trailing field of those reads empty.
FIELD_COUNTS: dict[str, dict[str, int]] = {
    "medical": {
        "IR": 10, "RE": 38, "HO": 15, "KO": 12, "SN": 9, "JD": 33, "MF": 33, "SY": 8,
        "SI": 44, "IY": 44, "TO": 48, "CO": 5, "SJ": 3, "GO": 4,
    },
    "pharmacy": {"YK": 9, "RE": 42, "SN": 9, "IY": 10, "GO": 4},
}  # fmt: skip
UTF8_BOM = b"\xef\xbb\xbf"

RECORD_TYPE = (
    "レコード識別"  # field 1 of every record: what a problem names when the type is unknown
)

# Every field name a problem may carry: the record types and the `RT.名前` fields of the
# layouts above. A problem's field is looked up here (safe_field), so a value from the file can
# never stand in for it; tests/connectors/test_robust_readers.py checks that every name the
# parsers raise is listed.
LAYOUT = frozenset(
    RECORDS
    | {RECORD_TYPE}
    | {
        "IR.点数表", "YK.点数表", "IR.都道府県", "YK.都道府県", "IR.医療機関コード",
        "YK.薬局コード", "IR.請求年月", "YK.請求年月",
        "RE.レセプト番号", "RE.レセプト種別", "RE.診療年月", "RE.調剤年月", "RE.男女区分",
        "RE.生年月日", "RE.入院年月日", "RE.医療機関コード", "RE.都道府県", "RE.点数表",
        "HO.保険者番号", "HO.被保険者証番号", "HO.診療実日数", "HO.処方箋受付回数", "HO.合計点数",
        "HO.一部負担金", "HO.負担金額",
        "KO.負担者番号", "KO.診療実日数", "KO.処方箋受付回数", "KO.合計点数",
        "SY.傷病名コード", "SY.修飾語コード", "SY.転帰区分", "SY.診療開始日",
        "SI.診療識別", "SI.診療行為コード", "SI.点数", "SI.回数",
        "IY.診療識別", "IY.医薬品コード", "IY.使用量", "IY.点数", "IY.回数",
        "TO.診療識別", "TO.特定器材コード", "TO.点数", "TO.回数",
        "CO.診療識別", "CO.コメントコード",
        "SH.単位薬剤料",
        "CZ.薬剤調製料コード", "CZ.処方箋交付年月日", "CZ.調剤年月日", "CZ.処方箋受付回",
        "CZ.調剤数量", "CZ.薬剤調製料点数", "CZ.薬剤料点数",
    }
)  # fmt: skip


class _Claim:
    def __init__(self, header: dict[str, Any], line: int, cells: list[str]) -> None:
        self.line = line
        self.data: dict[str, Any] = {
            "header": header,
            "re": None,
            "ho": None,
            "ko": [],
            "branch": "",
            "sy": [],
            "si": [],
            "iy": [],
            "to": [],
            "co": [],
            "rx": [],  # 調剤: one group per SH, with its CZ and IY records
        }
        self.data["re"] = _re(cells, header["kind"] == "pharmacy")


def _group(d: dict[str, Any], rt: str) -> dict[str, Any]:
    """The prescription group (last SH) a CZ or IY record belongs to."""
    if not d["rx"]:
        raise RowError(rt, f"{rt} before any SH (処方基本) record")
    return d["rx"][-1]


def _line(d: dict[str, Any], rt: str, cells: list[str], pharmacy: bool) -> None:
    """Add one record of a receipt to its data; RowError when the record is bad."""
    if rt == "HO":
        d["ho"] = _ho(cells, pharmacy)
    elif rt == "KO":
        d["ko"].append(_ko(cells, pharmacy))
    elif rt == "SN":
        d["branch"] = _f(cells, 7)
    elif rt == "SY":
        d["sy"].append(_sy(cells))
    elif rt == "SI":
        d["si"].append(_si(cells))
    elif rt == "IY" and pharmacy:
        _group(d, "IY")["iy"].append(_iy_pharmacy(cells))
    elif rt == "IY":
        d["iy"].append(_iy(cells))
    elif rt == "TO":
        d["to"].append(_to_pharmacy(cells) if pharmacy else _to(cells))
    elif rt == "CO":
        d["co"].append(_co_pharmacy(cells) if pharmacy else _co(cells))
    elif rt == "SH" and pharmacy:
        d["rx"].append({**_sh(cells), "cz": [], "iy": []})
    elif rt == "CZ" and pharmacy:
        _group(d, "CZ")["cz"].append(_cz(cells))
    elif rt in IGNORED:
        pass
    else:
        raise RowError(rt if rt in RECORDS else RECORD_TYPE, "unknown record type")


def read(path: Path) -> Iterator[Record | Problem]:
    """Stream a UKE file: one Record per receipt, one Problem per bad receipt or line. Whatever
    goes wrong on a line (a broken rule, or an exception nobody foresaw) rejects that line's
    receipt, never the file; a problem names a layout field, never a value of the file."""
    name = path.name
    header: dict[str, Any] | None = None
    header_line = 0  # the line of a rejected IR/YK: its receipts are rejected with it
    claim: _Claim | None = None
    claim_bad: Problem | None = None
    seen_go = False
    last_line = 0  # the last line with a record: where a missing GO is reported

    def problem(line: int, field: str, reason: str) -> Problem:
        return Problem(name, line, safe_field(field, LAYOUT), reason)

    def finish() -> Iterator[Record | Problem]:
        nonlocal claim, claim_bad
        done, bad = claim, claim_bad
        claim, claim_bad = None, None
        if done is None:
            return
        if bad is not None:
            yield bad
            return
        if done.data["ho"] is None:
            yield problem(done.line, "HO", "receipt without an HO (保険者) record")
            return
        try:
            ho, re = done.data["ho"], done.data["re"]
            resident = "|".join((ho["insurer"], ho["symbol"], ho["number"], done.data["branch"]))
            ym = f"{re['ym'][0]:04d}{re['ym'][1]:02d}"
            h = done.data["header"]
            key = f"{h['facility10']}:{ym}:{re['type']}"
            record = Record(SOURCE, h["kind"], done.line, key, resident, done.data)
        except Exception as exc:  # one receipt must never end the run
            yield problem(done.line, "RE", unexpected(exc))
            return
        yield record

    with path.open("rb") as fh:
        refused = not_cp932(fh.read(SNIFF_BYTES))
        if refused is not None:
            yield problem(refused[0], UNREADABLE, refused[1])
            return
        fh.seek(0)
        for lineno, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n").rstrip(b"\x1a")
            if not raw.strip():
                continue
            last_line = lineno
            try:
                text = raw.decode(ENCODING)
            except UnicodeDecodeError:
                p = problem(lineno, UNREADABLE, f"bytes not valid in {ENCODING}")
                if claim is not None:
                    claim_bad = claim_bad or p
                else:
                    yield p
                continue
            cells = text.split(",")
            rt = cells[0].strip()
            try:
                kind = "medical" if rt == "IR" else "pharmacy" if rt == "YK" else None
                counts = FIELD_COUNTS[kind or (header["kind"] if header else "medical")]
                miscount = None
                if rt in counts and len(cells) != counts[rt]:
                    why = f"{len(cells)} fields; the 記録条件仕様 defines {counts[rt]}"
                    miscount = RowError(rt, why)
                if rt in ("IR", "YK"):
                    yield from finish()
                    header, header_line = None, lineno
                    if miscount:
                        raise miscount
                    header = _header(cells, kind or "medical")
                    continue
                if rt == "GO":
                    yield from finish()
                    seen_go = True
                    if miscount:
                        raise miscount
                    continue
                if rt == "RE":
                    yield from finish()
                    if header is None:
                        claim = _Claim.__new__(_Claim)  # a placeholder: skip its lines too
                        claim.line, claim.data = lineno, {}
                        why = "its IR/YK record was rejected" if header_line else "before any IR/YK"
                        claim_bad = problem(lineno, "IR", f"RE {why}")
                        continue
                    try:
                        if miscount:
                            raise miscount
                        claim = _Claim(header, lineno, cells)
                    except Exception:
                        claim = _Claim.__new__(_Claim)
                        claim.line, claim.data = lineno, {}
                        raise
                    continue
                if claim is None:
                    if rt in IGNORED:
                        continue
                    raise RowError(rt if rt in RECORDS else RECORD_TYPE, "record outside a receipt")
                if claim_bad is not None:
                    continue
                if miscount:
                    raise miscount
                pharmacy = header is not None and header["kind"] == "pharmacy"
                _line(claim.data, rt, cells, pharmacy)
            except Exception as exc:  # one line must never end the run
                if isinstance(exc, RowError):
                    p = problem(lineno, exc.field, exc.reason)
                else:
                    p = problem(lineno, rt if rt in RECORDS else UNREADABLE, unexpected(exc))
                if claim is not None:
                    claim_bad = claim_bad or p
                else:
                    yield p
        yield from finish()
    if not last_line:
        yield problem(
            1, UNREADABLE, "the file is empty: no IR/YK, RE or GO record (a failed export?)"
        )
    elif not seen_go:
        yield problem(last_line, "GO", "file ends without a GO record (truncated?)")


def not_cp932(head: bytes) -> tuple[int, str] | None:
    """(line, reason) when the file's first bytes show it is not CP932: a UTF-8 byte order mark,
    or non-ASCII text that is valid UTF-8 (CP932 Japanese text practically never is). Decoded
    as CP932, such a file would give mojibake names that no longer match the register."""
    if head.startswith(UTF8_BOM):
        return 1, "the file starts with a UTF-8 byte order mark; UKE files are Shift_JIS (CP932)"
    if head.isascii():
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    first = next(i for i, b in enumerate(head) if b > 0x7F)
    return (
        head.count(b"\n", 0, first) + 1,
        "the file is UTF-8 with non-ASCII text; UKE files are Shift_JIS (CP932): export again",
    )
