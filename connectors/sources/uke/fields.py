"""The UKE field readers: dates in 西暦 (YYYYMMDD / YYYYMM) or legacy 和暦 (GYYMMDD / GYYMM),
codes, counts, amounts and the day-of-month columns. Each raises RowError naming the field."""

from __future__ import annotations

import calendar
from datetime import date

from connectors.sources.base import RowError, ascii_digits, in_range

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


def field(cells: list[str], n: int) -> str:
    """Field n (1-based, counting the record type as 1). Records whose count the spec fixes are
    checked first (`FIELD_COUNTS`); for the others a missing trailing field reads empty."""
    return cells[n - 1].strip() if len(cells) >= n else ""


def integer(cells: list[str], n: int, name: str, *, required: bool = False) -> int | None:
    """A count or an amount: ASCII digits only (`①` is a digit to `isdigit`, not to `int`),
    at most 9 of them (no UKE field is longer)."""
    v = field(cells, n)
    if not v:
        if required:
            raise RowError(name, "required but empty")
        return None
    if len(v) > 9 or not ascii_digits(v):
        raise RowError(name, "not a whole number")
    return int(v)


def code(cells: list[str], n: int, name: str, digits: int) -> str:
    v = field(cells, n)
    if len(v) != digits or not ascii_digits(v):
        raise RowError(name, f"not a {digits}-digit code")
    return v


def section(cells: list[str], n: int, name: str) -> str:
    """診療識別: empty or 2 digits. It becomes a code in the claim item."""
    v = field(cells, n)
    if v and (len(v) != 2 or not ascii_digits(v)):
        raise RowError(name, "not a 2-digit code")
    return v


def amount(v: str, name: str) -> float | None:
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


def days(cells: list[str], first: int) -> list[int]:
    """算定日情報: the days of the month (1–31) with a count."""
    out = []
    for day in range(1, 32):
        v = field(cells, first + day - 1)
        if v and v != "0":
            out.append(day)
    return out
