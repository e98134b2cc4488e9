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
                    header = read_header(cells, kind or "medical")
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
                add_record(claim.data, rt, cells, pharmacy)
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
