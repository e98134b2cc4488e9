"""What every source reader shares: records, problems, encoding detection and line-numbered
CSV streaming that survives a badly encoded line."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

SNIFF_BYTES = 64 * 1024


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
        except StopIteration:
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


# --- typed field readers (errors name the field, never the value) ---------------------------


def required(row: dict[str, str], name: str) -> str:
    value = row.get(name, "").strip()
    if not value:
        raise RowError(name, "required but empty")
    return value


def optional(row: dict[str, str], name: str) -> str | None:
    value = row.get(name, "").strip()
    return value or None


def parse_iso_date(value: str, name: str) -> date:
    """A date written `YYYY-MM-DD` or `YYYY/MM/DD` or `YYYYMMDD`."""
    v = value.strip().replace("/", "-")
    try:
        if len(v) == 8 and v.isdigit():
            return date(int(v[:4]), int(v[4:6]), int(v[6:]))
        return date.fromisoformat(v)
    except ValueError:
        raise RowError(name, "not a date (YYYY-MM-DD)") from None


def number(
    row: dict[str, str], name: str, lo: float, hi: float, *, integer: bool = False
) -> float | int | None:
    """An optional number within a plausible range (full-width digits are accepted)."""
    raw = optional(row, name)
    if raw is None:
        return None
    import unicodedata

    raw = unicodedata.normalize("NFKC", raw)
    try:
        value: float | int = int(raw) if integer else float(raw)
    except ValueError:
        raise RowError(name, "not a number") from None
    if not (lo <= value <= hi):
        raise RowError(name, f"out of range {lo}–{hi}")
    return value


def choice(row: dict[str, str], name: str, allowed: dict[str, str]) -> str | None:
    import unicodedata

    raw = optional(row, name)
    if raw is None:
        return None
    key = unicodedata.normalize("NFKC", raw).replace("−", "-").replace("ー", "-")
    if key not in allowed:
        raise RowError(name, "not one of " + ", ".join(sorted(allowed)))
    return allowed[key]


Parser = Callable[[int, dict[str, str]], Record]
