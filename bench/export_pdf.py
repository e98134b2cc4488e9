"""Time and peak memory of a child's printable record (portal.print_pdf) and CSV
(portal.export_csv) for 100 and 10,000 records (bench/export_pdf.md has the figures).

The records are made lazily, half vaccinations and half checkup findings (weight, length, head
circumference and a free-text finding in turn, over six years), as portal.export_facts hands
them over a search page at a time, so what is measured is the writers' own memory: flat when
nothing grows with the number of records. The PDF goes to a temporary file, as the portal's
route writes it. Each size runs twice: timed, then under tracemalloc for the peak Python heap
(an untimed pass: tracing slows Python several times). The font is registered before the
runs (once per process in the portal too); its cost is printed on its own.

    .venv/bin/python bench/export_pdf.py [--sizes 100 10000] [--font PATH]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date, timedelta

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


def write_pdf(n: int, font: str) -> tuple[int, int]:
    with tempfile.TemporaryFile() as out:
        print_pdf.write(out, facts(n), "ja", date(2026, 12, 7), font)
        size = out.tell()
        out.seek(0)
        pages = out.read().count(b"/Type /Page\n")
    return size, pages


def write_csv(n: int) -> tuple[int, int]:
    size = rows = 0
    for line in export_csv.lines(facts(n), "ja"):
        size += len(line)
        rows += 1
    return size, rows - 1


def measure(label: str, run: Callable[[], tuple[int, int]], unit: str) -> None:
    start = time.perf_counter()
    size, count = run()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"| {label} | {seconds:.2f} | {peak / 2**20:.1f} | {size / 1024:.0f} | {count} {unit} |")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    args.add_argument("--font", default=DEFAULT_FONT)
    opts = args.parse_args()
    start = time.perf_counter()
    print_pdf.font(opts.font)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    TTFont("bench-font-heap", opts.font)  # the same parse again, traced, for its heap
    _, font_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"font registration: {seconds:.2f} s, {font_peak / 2**20:.1f} MiB peak heap, "
          "once per process (not in the figures below)")  # fmt: skip
    print("| output, records | time (s) | peak Python heap (MiB) | size (KiB) | pages / rows |")
    print("| --- | ---: | ---: | ---: | --- |")
    for n in opts.sizes:
        measure(f"PDF, {n:,}", lambda n=n: write_pdf(n, opts.font), "pages")  # type: ignore[misc]
        measure(f"CSV, {n:,}", lambda n=n: write_csv(n), "rows")  # type: ignore[misc]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS after all runs: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
