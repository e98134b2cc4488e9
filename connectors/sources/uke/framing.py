"""UKE file framing: CP932, CRLF, comma-separated without quoting, EOF byte 0x1A; IR/YK
opens a facility's receipts, RE a receipt, GO ends the file. `read` streams the file and yields
one Record per receipt (RE up to the next RE or GO), so memory stays flat however large the
file. A bad line rejects its receipt (a partial claim would mislead the person), is reported
with its line, record field and reason, and the reader goes on with the next receipt."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.sources.base import (
    SNIFF_BYTES,
    UNREADABLE,
    Problem,
    Record,
    RowError,
    safe_field,
    unexpected,
)
from connectors.sources.uke.layout import FIELD_COUNTS, IGNORED, LAYOUT, RECORD_TYPE, RECORDS
from connectors.sources.uke.records import add_record, read_header, read_receipt

SOURCE = "uke"
ENCODING = "cp932"
UTF8_BOM = b"\xef\xbb\xbf"


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
        self.data["re"] = read_receipt(cells, header["kind"] == "pharmacy")

    @classmethod
    def placeholder(cls, line: int) -> _Claim:
        """A receipt already rejected at its RE: it stands open so its lines are skipped too."""
        claim = cls.__new__(cls)
        claim.line, claim.data = line, {}
        return claim


def read(path: Path) -> Iterator[Record | Problem]:
    """Stream a UKE file: one Record per receipt, one Problem per bad receipt or line. Whatever
    goes wrong on a line (a broken rule, or an exception nobody foresaw) rejects that line's
    receipt, never the file; a problem names a layout field, never a value of the file."""
    reader = _Reader(path.name)
    with path.open("rb") as fh:
        refused = not_cp932(fh.read(SNIFF_BYTES))
        if refused is not None:
            yield reader.problem(refused[0], UNREADABLE, refused[1])
            return
        fh.seek(0)
        for lineno, raw in enumerate(fh, start=1):
            yield from reader.line(lineno, raw)
        yield from reader.close_receipt()
    yield from reader.end_of_file()


class _Reader:
    """One file's reading state, a line at a time: the facility (IR/YK) and the receipt (RE)
    open now, and the first problem of that receipt, reported when the receipt closes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.header: dict[str, Any] | None = None
        self.header_line = 0  # the line of a rejected IR/YK: its receipts are rejected with it
        self.claim: _Claim | None = None
        self.claim_bad: Problem | None = None
        self.seen_go = False
        self.last_line = 0  # the last line with a record: where a missing GO is reported

    def problem(self, line: int, field: str, reason: str) -> Problem:
        return Problem(self.name, line, safe_field(field, LAYOUT), reason)

    def line(self, lineno: int, raw: bytes) -> Iterator[Record | Problem]:
        """Decode one line and read its record; a failure rejects the open receipt, or is
        reported on its own outside a receipt."""
        raw = raw.rstrip(b"\r\n").rstrip(b"\x1a")
        if not raw.strip():
            return
        self.last_line = lineno
        try:
            text = raw.decode(ENCODING)
        except UnicodeDecodeError:
            yield from self.reject(
                self.problem(lineno, UNREADABLE, f"bytes not valid in {ENCODING}")
            )
            return
        cells = text.split(",")
        rt = cells[0].strip()
        try:
            yield from self.record(lineno, rt, cells)
        except Exception as exc:  # one line must never end the run
            if isinstance(exc, RowError):
                p = self.problem(lineno, exc.field, exc.reason)
            else:
                p = self.problem(lineno, rt if rt in RECORDS else UNREADABLE, unexpected(exc))
            yield from self.reject(p)

    def reject(self, p: Problem) -> Iterator[Problem]:
        """Inside a receipt the first problem rejects it (reported when it closes); outside,
        the problem is reported now."""
        if self.claim is not None:
            self.claim_bad = self.claim_bad or p
        else:
            yield p

    def record(self, lineno: int, rt: str, cells: list[str]) -> Iterator[Record | Problem]:
        kind = "medical" if rt == "IR" else "pharmacy" if rt == "YK" else None
        miscount = self.miscount(rt, cells, kind)
        if kind is not None:
            yield from self.open_facility(lineno, kind, cells, miscount)
        elif rt == "GO":
            yield from self.end_of_claims(miscount)
        elif rt == "RE":
            yield from self.open_receipt(lineno, cells, miscount)
        else:
            self.add_to_receipt(rt, cells, miscount)

    def miscount(self, rt: str, cells: list[str], kind: str | None) -> RowError | None:
        """A record with another number of fields than the 記録条件仕様 defines for it."""
        counts = FIELD_COUNTS[kind or (self.header["kind"] if self.header else "medical")]
        if rt in counts and len(cells) != counts[rt]:
            why = f"{len(cells)} fields; the 記録条件仕様 defines {counts[rt]}"
            return RowError(rt, why)
        return None

    def open_facility(
        self, lineno: int, kind: str, cells: list[str], miscount: RowError | None
    ) -> Iterator[Record | Problem]:
        """IR (医科) or YK (調剤): closes the open receipt and starts a facility's receipts."""
        yield from self.close_receipt()
        self.header, self.header_line = None, lineno
        if miscount:
            raise miscount
        self.header = read_header(cells, kind)

    def end_of_claims(self, miscount: RowError | None) -> Iterator[Record | Problem]:
        """GO: closes the open receipt and ends the file's claims."""
        yield from self.close_receipt()
        self.seen_go = True
        if miscount:
            raise miscount

    def open_receipt(
        self, lineno: int, cells: list[str], miscount: RowError | None
    ) -> Iterator[Record | Problem]:
        """RE: closes the open receipt and opens the next, rejected at once when its facility
        is missing or rejected, or the RE itself is bad."""
        yield from self.close_receipt()
        if self.header is None:
            self.claim = _Claim.placeholder(lineno)
            why = "its IR/YK record was rejected" if self.header_line else "before any IR/YK"
            self.claim_bad = self.problem(lineno, "IR", f"RE {why}")
            return
        try:
            if miscount:
                raise miscount
            self.claim = _Claim(self.header, lineno, cells)
        except Exception:
            self.claim = _Claim.placeholder(lineno)
            raise

    def add_to_receipt(self, rt: str, cells: list[str], miscount: RowError | None) -> None:
        """Any other record: part of the open receipt (skipped once the receipt is rejected)."""
        if self.claim is None:
            if rt in IGNORED:
                return
            raise RowError(rt if rt in RECORDS else RECORD_TYPE, "record outside a receipt")
        if self.claim_bad is not None:
            return
        if miscount:
            raise miscount
        pharmacy = self.header is not None and self.header["kind"] == "pharmacy"
        add_record(self.claim.data, rt, cells, pharmacy)

    def close_receipt(self) -> Iterator[Record | Problem]:
        """The open receipt as a Record, or its first problem, or a problem for a missing HO."""
        done, bad = self.claim, self.claim_bad
        self.claim, self.claim_bad = None, None
        if done is None:
            return
        if bad is not None:
            yield bad
            return
        if done.data["ho"] is None:
            yield self.problem(done.line, "HO", "receipt without an HO (保険者) record")
            return
        try:
            ho, re = done.data["ho"], done.data["re"]
            resident = "|".join((ho["insurer"], ho["symbol"], ho["number"], done.data["branch"]))
            ym = f"{re['ym'][0]:04d}{re['ym'][1]:02d}"
            h = done.data["header"]
            key = f"{h['facility10']}:{ym}:{re['type']}"
            record = Record(SOURCE, h["kind"], done.line, key, resident, done.data)
        except Exception as exc:  # one receipt must never end the run
            yield self.problem(done.line, "RE", unexpected(exc))
            return
        yield record

    def end_of_file(self) -> Iterator[Problem]:
        """An empty file, or one that stops before its GO (a failed or cut export)."""
        if not self.last_line:
            yield self.problem(
                1, UNREADABLE, "the file is empty: no IR/YK, RE or GO record (a failed export?)"
            )
        elif not self.seen_go:
            yield self.problem(self.last_line, "GO", "file ends without a GO record (truncated?)")


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
