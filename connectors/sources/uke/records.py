"""The UKE record readers: one function per record type (医科 and 調剤 layouts; field numbers
per uke.md §5, 調剤 per docs/uke.md, unverified), and `add_record`, which adds one record of a
receipt to the receipt's data. Names, free texts and recipient numbers are never kept."""

from __future__ import annotations

import unicodedata
from typing import Any

from connectors.sources.base import RowError, ascii_digits
from connectors.sources.uke.fields import amount as _amount
from connectors.sources.uke.fields import code as _code
from connectors.sources.uke.fields import days as _days
from connectors.sources.uke.fields import field as _f
from connectors.sources.uke.fields import integer as _int
from connectors.sources.uke.fields import parse_date, parse_year_month
from connectors.sources.uke.fields import section as _section
from connectors.sources.uke.layout import IGNORED, RECORD_TYPE, RECORDS


def read_header(cells: list[str], kind: str) -> dict[str, Any]:
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


def read_receipt(cells: list[str], pharmacy: bool = False) -> dict[str, Any]:
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


def _group(d: dict[str, Any], rt: str) -> dict[str, Any]:
    """The prescription group (last SH) a CZ or IY record belongs to."""
    if not d["rx"]:
        raise RowError(rt, f"{rt} before any SH (処方基本) record")
    return d["rx"][-1]


def add_record(d: dict[str, Any], rt: str, cells: list[str], pharmacy: bool) -> None:
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
