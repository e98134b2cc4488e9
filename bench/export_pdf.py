"""Time and peak memory of a child's printable record (portal.print_pdf) and CSV
(portal.export_csv) as the number of records grows (bench/export_pdf.md has the figures).

The records are made lazily, half vaccinations and half checkup findings (weight, length, head
circumference and a free-text finding in turn, over six years), as portal.export_facts hands
them over a search page at a time, so what is measured is the writers' own memory: flat when
nothing grows with the number of records. The output is consumed as the portal's response
does (counted, not kept).

Each output and size runs in a fresh process, after the font is registered (once per process
in the portal too; its cost is printed on its own) and one small warm-up printout: a timed run
whose peak resident memory is read from the kernel (VmHWM, reset just before the run through
/proc/self/clear_refs, so the font's parse does not hide it), then a run under tracemalloc for
the peak Python heap (untimed: tracing slows Python several times).

    .venv/bin/python bench/export_pdf.py [--sizes 100 1000 10000 50000] [--font PATH]
        [--flat MIB]

With --flat, it fails (exit status 1) when an output's peak Python heap differs between the
sizes by more than MIB: a check that memory does not grow with the number of records.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

from reportlab.pdfbase.ttfonts import TTFont

from portal import export_csv, print_pdf
from portal.care import growth
from portal.export_facts import ChildFacts, Finding, Lazy, Vaccination
from portal.plus_pages import Person

DEFAULT_FONT = print_pdf.DEFAULT_FONT
BIRTH = date(2020, 4, 1)
CITY = "会津若松市（デモ）"
VACCINES = ("B型肝炎", "ロタウイルス（5価）", "五種混合", "小児用肺炎球菌（20価）", "BCG",
            "麻しん風しん混合", "水痘", "日本脳炎")  # fmt: skip
SPAN_DAYS = 6 * 365
STATUS = Path("/proc/self/status")


def _day(i: int, n: int) -> date:
    return BIRTH + timedelta(days=i * SPAN_DAYS // max(n, 1))


def vaccinations(n: int) -> Iterator[Vaccination]:
    for i in range(n):
        yield Vaccination(_day(i, n).isoformat(), VACCINES[i % len(VACCINES)], str(i % 4 + 1), CITY)


def findings(n: int) -> Iterator[Finding]:
    """Measurements near the girls' medians, and every fourth a finding in words."""
    for i in range(n):
        day = _day(i, n)
        age = (day - BIRTH).days / growth.DAYS_PER_MONTH
        kind = i % 4
        if kind == 3:
            yield Finding(day.isoformat(), "股関節", "所見なし", "", CITY)
            continue
        measure = ("weight", "height", "head_circumference")[kind]
        value = (3.0 + 0.25 * min(age, 36), 49.0 + 1.2 * min(age, 36), 33.0 + 0.4 * min(age, 24))
        v = round(value[kind], 1)
        yield Finding(day.isoformat(), measure, f"{v}", "kg" if kind == 0 else "cm", CITY,
                      measure, growth.Measurement(day, age, v))  # fmt: skip


def facts(n: int) -> ChildFacts:
    child = Person("bench-child", "child", BIRTH, "female")
    half = n // 2
    return ChildFacts(child, child.label("ja"), [CITY], Lazy(lambda: vaccinations(half)),
                      Lazy(lambda: findings(n - half)))  # fmt: skip


class Counted:
    """A file-like that counts what is written to it and keeps nothing, like the response."""

    def __init__(self) -> None:
        self.size = self.pages = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.pages += data.count(b"/Type /Page\n")


def write_pdf(n: int, font: str) -> tuple[int, int]:
    out = Counted()
    print_pdf.write(out, facts(n), "ja", date(2026, 12, 7), font)  # type: ignore[arg-type]  # a write() is all it needs
    return out.size, out.pages


def write_csv(n: int) -> tuple[int, int]:
    size = rows = 0
    for line in export_csv.lines(facts(n), "ja"):
        size += len(line)
        rows += 1
    return size, rows - 1


def _kib(field: str) -> int:
    """A /proc/self/status field (VmRSS, VmHWM) in KiB."""
    line = next(line for line in STATUS.read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1])


def one(kind: str, n: int, font: str) -> dict[str, float]:
    """One output at one size, measured in this (fresh) process."""
    print_pdf.font(font)
    run: Callable[[], tuple[int, int]] = (
        (lambda: write_pdf(n, font)) if kind == "PDF" else (lambda: write_csv(n))
    )
    write_pdf(10, font) if kind == "PDF" else write_csv(10)  # warm-up: first-use caches
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    rss_before = _kib("VmRSS")
    start = time.perf_counter()
    size, count = run()
    seconds = time.perf_counter() - start
    rss_peak = _kib("VmHWM")
    tracemalloc.start()
    run()
    _, heap = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "heap": heap / 2**20, "rss": rss_peak / 1024,
            "rss_growth": (rss_peak - rss_before) / 1024, "size": size / 1024,
            "count": count}  # fmt: skip


def main() -> None:
    args = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    args.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000, 50_000])
    args.add_argument("--font", default=DEFAULT_FONT)
    args.add_argument("--flat", type=float, metavar="MIB", help="fail if a peak heap grows more")
    args.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    opts = args.parse_args()
    if opts.one:
        print(json.dumps(one(opts.one[0], int(opts.one[1]), opts.font)))
        return
    start = time.perf_counter()
    print_pdf.font(opts.font)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    TTFont("bench-font-heap", opts.font)  # the same parse again, traced, for its heap
    _, font_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"font registration: {seconds:.2f} s, {font_peak / 2**20:.1f} MiB peak heap, "
          "once per process (not in the figures below)")  # fmt: skip
    print("| output, records | time (s) | peak Python heap (MiB) | peak RSS (MiB) "
          "| RSS growth (MiB) | size (KiB) | pages / rows |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    grown = []
    for kind in ("PDF", "CSV"):
        heaps = []
        for n in opts.sizes:
            cmd = [sys.executable, __file__, "--font", opts.font, "--one", kind, str(n)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)  # noqa: S603 - this script, with its own arguments
            unit = "pages" if kind == "PDF" else "rows"
            print(f"| {kind}, {n:,} | {r['seconds']:.2f} | {r['heap']:.1f} | {r['rss']:.0f} "
                  f"| {r['rss_growth']:.1f} | {r['size']:.0f} | {r['count']} {unit} |")  # fmt: skip
            heaps.append(r["heap"])
        if opts.flat is not None and max(heaps) - min(heaps) > opts.flat:
            grown.append(f"{kind}: peak heap {min(heaps):.2f} to {max(heaps):.2f} MiB")
    if grown:
        sys.exit("not flat: " + "; ".join(grown))


if __name__ == "__main__":
    main()
