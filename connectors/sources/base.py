"""What every source reader shares: records, problems, encoding detection and line-numbered
CSV streaming that survives a badly encoded line."""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

SNIFF_BYTES = 64 * 1024

# The dates a source row may carry. Before 1868 no record of a living person or of care can
# be (the UKE's earliest era, 明治, starts then); after 2199 a date is a placeholder such as
# 9999-12-31 ("open end" in many exports) or a typo, never an event of care. Refusing them at
# the reader keeps every later step (mapping, the PHR server's index) far from its limits.
EARLIEST = date(1868, 1, 1)
LATEST = date(2199, 12, 31)

# A number is ASCII digits. Full-width digits (０–９), which Japanese exports often hold, are
# read as the same digits; nothing else is a digit here, although `str.isdigit()` is true for
# ① or ² and `int()` and `float()` read ٣ or ３ (and refuse ① with an uncaught ValueError).
_WIDE = str.maketrans("０１２３４５６７８９．－＋", "0123456789.-+")
_WIDE_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,9}(\.[0-9]{1,9})?")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
UNREADABLE = "-"  # the field of a problem no layout field can be named for


class RowError(ValueError):
    """A row cannot be used: which field and why. The message must never quote the value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(slots=True)
class Problem:
    """A rejected row: file, line, field and reason. No content (it may hold personal data)."""

    file: str
    line: int
    field: str
    reason: str


@dataclass(slots=True)
class Record:
    """One parsed source record. `resident` is the resident number (住民番号) or, for claims,
    the insurance key that the resident register resolves; it is dropped after pseudonymising.
    `key` is the source system's own record key (stable across corrected re-exports)."""

    source: str
    kind: str
    line: int
    key: str
    resident: str
    data: dict[str, Any] = field(default_factory=dict)


def detect_encoding(head: bytes) -> str:
    """`utf-8-sig` when the head is valid UTF-8 (a character cut at the end is tolerated),
    otherwise `cp932` (Shift_JIS as Windows writes it, a superset of JIS X 0208)."""
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return "cp932"
    return "utf-8-sig"


def sniff_file(path: Path) -> str:
    with path.open("rb") as fh:
        return detect_encoding(fh.read(SNIFF_BYTES))


class _Lines:
    """Decode a binary file line by line, remembering which physical lines failed to decode,
    so a bad byte sequence rejects one row instead of the whole file."""

    def __init__(self, fh: BinaryIO, encoding: str) -> None:
        self.fh = fh
        self.encoding = encoding
        self.lineno = 0
        self.bad_lines: set[int] = set()
        self._first = True

    def __iter__(self) -> Iterator[str]:
        for raw in self.fh:
            self.lineno += 1
            enc = self.encoding
            if not self._first and enc == "utf-8-sig":
                enc = "utf-8"
            self._first = False
            try:
                yield raw.decode(enc)
            except UnicodeDecodeError:
                self.bad_lines.add(self.lineno)
                yield raw.decode(enc, errors="replace")


def csv_rows(
    path: Path, encoding: str | None = None
) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
    """Yield (line, row-as-dict, problem) for each data row of a CSV file with a header line.
    `line` is the physical line the row starts on (1 = the header)."""
    enc = encoding or sniff_file(path)
    with path.open("rb") as fh:
        lines = _Lines(fh, enc)
        reader = csv.reader(lines, strict=True)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:  # an empty export is a failed export, not a quiet month
            yield 1, None, "the file is empty: no header line (a failed export?)"
            return
        except csv.Error:
            yield 1, None, "header is not valid CSV"
            return
        if 1 in lines.bad_lines:
            yield 1, None, f"header is not valid {enc}"
            return
        start = lines.lineno + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error:
                yield start, None, "not valid CSV (quoting)"
                start = lines.lineno + 1
                continue
            end = lines.lineno
            row_start = start
            start = end + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if any(n in lines.bad_lines for n in range(row_start, end + 1)):
                yield row_start, None, f"bytes not valid in {enc}"
                continue
            if len(cells) != len(header):
                yield row_start, None, f"{len(cells)} fields, header has {len(header)}"
                continue
            yield row_start, dict(zip(header, cells, strict=True)), None


def safe_field(name: str, layout: Iterable[str]) -> str:
    """`name` when it is a field of the record layout, otherwise `-`: a report's field column
    must never carry a value from the file (an unknown record type's first cell, or a free-text
    line a stray line break started)."""
    return name if name in layout else UNREADABLE


def unexpected(exc: BaseException) -> str:
    """The reason for a row whose parsing failed in a way no rule foresaw: the exception's type
    only (its message may quote the value)."""
    return f"could not be read ({type(exc).__name__})"


def read_rows(
    path: Path,
    parse_row: Parser,
    layout: Iterable[str],
    encoding: str | None = None,
) -> Iterator[Record | Problem]:
    """Stream a CSV export: one Record or Problem per data row. Whatever goes wrong on a row
    (a broken rule, or an exception nobody foresaw) rejects that row, never the file."""
    name = path.name
    fields = frozenset(layout)
    for line, row, problem in csv_rows(path, encoding):
        if row is None:
            yield Problem(name, line, UNREADABLE, problem or "unreadable")
            continue
        try:
            yield parse_row(line, row)
        except RowError as exc:
            yield Problem(name, line, safe_field(exc.field, fields), exc.reason)
        except Exception as exc:  # one row must never end the run
            yield Problem(name, line, UNREADABLE, unexpected(exc))


# --- typed field readers (errors name the field, never the value) ---------------------------


def ascii_digits(value: str) -> bool:
    """True when `value` is one or more ASCII digits (see `_WIDE` for why not `isdigit`)."""
    return _DIGITS.fullmatch(value) is not None


def wide_to_ascii(value: str) -> str:
    """Full-width digits, point and signs as ASCII; every other character unchanged."""
    return value.translate(_WIDE)


def in_range(d: date, name: str) -> date:
    if not EARLIEST <= d <= LATEST:
        raise RowError(name, f"outside {EARLIEST.year}–{LATEST.year} (a placeholder?)")
    return d


def required(row: dict[str, str], name: str) -> str:
    value = row.get(name, "").strip()
    if not value:
        raise RowError(name, "required but empty")
    return value


def optional(row: dict[str, str], name: str) -> str | None:
    value = row.get(name, "").strip()
    return value or None


def parse_iso_date(value: str, name: str) -> date:
    """A date written `YYYY-MM-DD` or `YYYY/MM/DD` or `YYYYMMDD`, between EARLIEST and
    LATEST."""
    v = value.strip().translate(_WIDE_DIGITS).replace("/", "-")
    if len(v) == 8 and ascii_digits(v):
        v = f"{v[:4]}-{v[4:6]}-{v[6:]}"
    m = _ISO_DATE.fullmatch(v)
    try:
        if m is None:
            raise ValueError
        d = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise RowError(name, "not a date (YYYY-MM-DD)") from None
    return in_range(d, name)


def number(
    row: dict[str, str], name: str, lo: float, hi: float, *, integer: bool = False
) -> float | int | None:
    """An optional number within a plausible range (full-width digits are accepted)."""
    raw = optional(row, name)
    if raw is None:
        return None
    raw = wide_to_ascii(raw)
    if _DECIMAL.fullmatch(raw) is None:
        raise RowError(name, "not a number")
    if integer and "." in raw:
        raise RowError(name, "not a whole number")
    value: float | int = int(raw) if integer else float(raw)
    if not (lo <= value <= hi):
        raise RowError(name, f"out of range {lo}–{hi}")
    return value


def facility_code(row: dict[str, str], name: str) -> str | None:
    """An optional 10-digit 医療機関コード as the exports write it: 都道府県 (01–47), 点数表
    (1 医科, 3 歯科, 4 調剤) and the 7-digit code. It becomes an Organization identifier, so
    anything else (a name, `'; DROP TABLE …`) rejects the row instead of reaching the server."""
    raw = optional(row, name)
    if raw is None:
        return None
    code = raw.translate(_WIDE_DIGITS)
    if len(code) != 10 or not ascii_digits(code):
        raise RowError(name, "not a 10-digit 医療機関コード")
    if not 1 <= int(code[:2]) <= 47 or code[2] not in "134":
        raise RowError(name, "not a 医療機関コード (都道府県 01–47, 点数表 1/3/4)")
    return code


def choice(row: dict[str, str], name: str, allowed: dict[str, str]) -> str | None:
    raw = optional(row, name)
    if raw is None:
        return None
    key = unicodedata.normalize("NFKC", raw).replace("−", "-").replace("ー", "-")
    if key not in allowed:
        raise RowError(name, "not one of " + ", ".join(sorted(allowed)))
    return allowed[key]


Parser = Callable[[int, dict[str, str]], Record]
