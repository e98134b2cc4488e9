"""FHIR dates as ranges. `2024`, `2024-05`, `2024-05-01` and `2024-05-01T09:00:00+09:00` each
stand for an interval; search compares intervals (FHIR R4 search, 3.1.1.5.4). Values without a
time zone are read in Japan Standard Time, the same way for stored values and for queries."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -(2**62)
MAX_US = 2**62

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def to_us(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def parse_range(value: str) -> tuple[int, int]:
    """[start, end) in microseconds since the epoch; ValueError when `value` is no FHIR date."""
    m = _DATE_RE.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a FHIR date or dateTime")
    y = int(m["y"])
    if m["m"] is None:
        start = datetime(y, 1, 1, tzinfo=JST)
        end = datetime(y + 1, 1, 1, tzinfo=JST)
    elif m["d"] is None:
        mo = int(m["m"])
        start = datetime(y, mo, 1, tzinfo=JST)
        end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=JST)
    elif m["H"] is None:
        start = datetime(y, int(m["m"]), int(m["d"]), tzinfo=JST)
        end = start + timedelta(days=1)
    else:
        tz = JST
        if m["tz"] == "Z":
            tz = UTC
        elif m["tz"]:
            sign = 1 if m["tz"][0] == "+" else -1
            hh, mm = m["tz"][1:].split(":")
            tz = timezone(sign * timedelta(hours=int(hh), minutes=int(mm)))
        frac = m["f"] or ""
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        start = datetime(
            y, int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"] or 0), micro, tz
        )
        if m["S"] is None:
            step = timedelta(minutes=1)
        elif frac:
            step = timedelta(microseconds=1)
        else:
            step = timedelta(seconds=1)
        end = start + step
    return to_us(start), to_us(end)


def value_range(value: object) -> tuple[int, int] | None:
    """A range for a str/date/datetime as found in a resource, or None."""
    if isinstance(value, datetime):
        v = value if value.tzinfo else value.replace(tzinfo=JST)
        us = to_us(v)
        return us, us + 1
    if isinstance(value, date):
        return parse_range(value.isoformat())
    if isinstance(value, str):
        try:
            return parse_range(value)
        except ValueError:
            return None
    return None


def instant(dt: datetime) -> str:
    """An instant as FHIR writes it: UTC with milliseconds."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
