"""FHIR dates as ranges. `2024`, `2024-05`, `2024-05-01` and `2024-05-01T09:00:00+09:00` each
stand for an interval; search compares intervals (FHIR R4 search, 3.1.1.5.4). Values without a
time zone are read in Japan Standard Time, the same way for stored values and for queries.

Ranges are computed in whole microseconds from day numbers, never with `datetime` arithmetic:
the end of `9999-12-31` (the first instant of year 10000) or a time zone that moves
`0001-01-01` into year 0 lies outside what `datetime` can hold, and an `OverflowError` there
once turned a valid date into a 500. Here every value the pattern accepts either gives a range
or raises `ValueError` (a 400 naming the element or parameter); nothing else can escape."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -(2**62)
MAX_US = 2**62

_EPOCH_DAY = date(1970, 1, 1).toordinal()
_US_PER_DAY = 86_400_000_000
_JST_OFFSET_S = 9 * 3600
_MAX_OFFSET_S = 14 * 3600  # FHIR's time zones run from -14:00 to +14:00

# ASCII digits only: `\d` would also match ２０２４ or ٢٠٢٤, which no FHIR date contains.
_DATE_RE = re.compile(
    r"^(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?P<f>\.[0-9]+)?)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$"
)


def to_us(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _day(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a calendar day; ValueError when there is no such day."""
    if y < 1:
        raise ValueError("year 0000 is not a FHIR year")
    return date(y, m, d).toordinal() - _EPOCH_DAY


def _offset_s(tz: str | None) -> int:
    if tz is None:
        return _JST_OFFSET_S
    if tz == "Z":
        return 0
    hh, mm = int(tz[1:3]), int(tz[4:6])
    seconds = hh * 3600 + mm * 60
    if mm > 59 or seconds > _MAX_OFFSET_S:
        raise ValueError("time zone offset out of range")
    return seconds if tz[0] == "+" else -seconds


def parse_range(value: str) -> tuple[int, int]:
    """[start, end) in microseconds since the epoch; ValueError when `value` is no FHIR date
    (and only ValueError, whatever the value)."""
    m = _DATE_RE.match(value.strip())
    if not m:
        raise ValueError("not a FHIR date or dateTime")
    y = int(m["y"])
    if m["m"] is None:
        first = _day(y, 1, 1)
        return _local(first, 0, None), _local(_day(y, 12, 31) + 1, 0, None)
    mo = int(m["m"])
    if not 1 <= mo <= 12:
        raise ValueError("no such month")
    if m["d"] is None:
        first = _day(y, mo, 1)
        last = _day(y, mo, calendar.monthrange(y, mo)[1])
        return _local(first, 0, None), _local(last + 1, 0, None)
    day = _day(y, mo, int(m["d"]))
    if m["H"] is None:
        return _local(day, 0, None), _local(day + 1, 0, None)
    hh, mi, ss = int(m["H"]), int(m["M"]), int(m["S"] or 0)
    if hh > 23 or mi > 59 or ss > 60:  # FHIR allows a leap second (:60)
        raise ValueError("no such time of day")
    frac = m["f"] or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    start = _local(day, ((hh * 60 + mi) * 60 + ss) * 1_000_000 + micro, m["tz"])
    if m["S"] is None:
        step = 60_000_000
    elif frac:
        step = 1
    else:
        step = 1_000_000
    return start, start + step


def _local(day: int, us_of_day: int, tz: str | None) -> int:
    return day * _US_PER_DAY + us_of_day - _offset_s(tz) * 1_000_000


def value_range(value: object) -> tuple[int, int] | None:
    """A range for a str/date/datetime as found in a resource, or None."""
    try:
        if isinstance(value, datetime):
            v = value if value.tzinfo else value.replace(tzinfo=JST)
            us = to_us(v)
            return us, us + 1
        if isinstance(value, date):
            return parse_range(value.isoformat())
        if isinstance(value, str):
            return parse_range(value)
    except (ValueError, OverflowError):
        return None
    return None


def instant(dt: datetime) -> str:
    """An instant as FHIR writes it: UTC with milliseconds."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
