"""The resident register (住民基本台帳) export the city gives the connector: who lives here,
with the NHI insurance key that claims carry. It is read only inside the city, to answer link
requests and to resolve claims to residents; nothing of it leaves except pseudonymous codes.
See docs/register_csv.md."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from connectors.pseudonym import Pseudonymizer
from connectors.sources.base import csv_rows, optional, parse_iso_date, required

HEADERS = [
    "住民番号",
    "氏名",
    "氏名カナ",
    "生年月日",
    "性別",
    "住所",
    "保険者番号",
    "被保険者証記号",
    "被保険者証番号",
    "枝番",
]
SEX = {"男": "male", "女": "female", "1": "male", "2": "female", "male": "male", "female": "female"}


@dataclass(slots=True)
class Resident:
    line: int
    number: str
    name: str
    birthdate: date
    sex: str
    address: str
    insurance_key: str | None


def normalize_text(value: str) -> str:
    """For matching names and addresses: NFKC, no spaces, unified hyphens and 丁目/番/号 forms."""
    v = unicodedata.normalize("NFKC", value or "")
    v = re.sub(r"\s+", "", v)
    v = re.sub(r"[‐-‒–—―ー−－]", "-", v)
    v = re.sub(r"(\d+)丁目(\d+)番(地)?(\d+)号?", r"\1-\2-\4", v)
    v = re.sub(r"(\d+)丁目(\d+)番地?", r"\1-\2", v)
    return v.casefold()


def insurance_key(insurer: str, symbol: str, number: str, branch: str) -> str:
    n = [
        unicodedata.normalize("NFKC", x or "").replace(" ", "")
        for x in (insurer, symbol, number, branch)
    ]
    return "|".join(n)


def read(path: Path) -> Iterator[Resident]:
    """Stream the register; bad rows are skipped (the register is not a data source of its own,
    a bad row only means that person cannot be linked or resolved)."""
    for line, row, _problem in csv_rows(path):
        resident = _resident(line, row) if row is not None else None
        if resident is not None:
            yield resident


def _resident(line: int, row: dict[str, str]) -> Resident | None:
    """One register row, or None when it is unusable (a broken rule, or anything else: one row
    must never end the run)."""
    try:
        ins = optional(row, "保険者番号")
        return Resident(
            line=line,
            number=required(row, "住民番号"),
            name=required(row, "氏名"),
            birthdate=parse_iso_date(required(row, "生年月日"), "生年月日"),
            sex=SEX.get(unicodedata.normalize("NFKC", required(row, "性別")), "unknown"),
            address=required(row, "住所"),
            insurance_key=insurance_key(
                ins,
                row.get("被保険者証記号", ""),
                row.get("被保険者証番号", ""),
                row.get("枝番", ""),
            )
            if ins
            else None,
        )
    except Exception:
        return None


@dataclass(slots=True)
class Demographics:
    gender: str
    birthdate: date


class ConsentedIndex:
    """What the mapping needs about consented residents only: gender and birth date by code, and
    the code behind each NHI insurance key. Memory grows with consenting people, not with files."""

    def __init__(self) -> None:
        self.demographics: dict[str, Demographics] = {}
        self.by_insurance: dict[str, str] = {}

    @classmethod
    def build(
        cls,
        path: Path | None,
        pseudo: Pseudonymizer,
        consented: set[str],
        claims_consented: set[str] | None = None,
    ) -> ConsentedIndex:
        """One register pass. `consented`: codes consenting to anything (their sex and birth
        date go into Patient); `claims_consented`: codes whose NHI claims may be resolved."""
        idx = cls()
        if path is None:
            return idx
        claims = claims_consented if claims_consented is not None else consented
        for r in read(path):
            code = pseudo.code(r.number)
            if code not in consented:
                continue
            idx.demographics[code] = Demographics(r.sex, r.birthdate)
            if r.insurance_key and code in claims:
                idx.by_insurance[r.insurance_key] = code
        return idx
