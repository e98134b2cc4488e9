"""Property-based fuzzing (hypothesis) of what reads untrusted input: the UKE reader, the MCH and
vaccination CSV readers, and the PHR server's FHIR search-parameter parser (issue 18).

The properties, for every generated input:

* no crash: a reader yields only Records and Problems, the search parser returns a Query or
  raises its BadRequest; any other exception is a finding;
* no hang: each input must finish within `--hang` seconds (SIGALRM stops it: a finding);
* every rejection is explained: a Problem names the file, a line of the file (1 … its number
  of lines), a field of the record layout (or `-` when none applies) and a reason; a
  BadRequest names the parameter and says why.

Inputs are structure-aware (records of the real types with cells drawn from valid values,
boundary values and junk; CSV rows under the real headers; search parameters from the server's
tables) and then encoded as CP932, UTF-8 (with or without BOM), or with bytes spliced in.

    .venv/bin/python bench/fuzz_readers.py --inputs 1000000      # results: bench/fuzz_readers.md

Hypothesis runs in rounds of `--round` examples (a fresh engine each round, so its memory of
tried inputs stays small), each round with its own seed; the count is of inputs actually run."""

from __future__ import annotations

import argparse
import random
import resource
import signal
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from connectors.sources import mch_csv, uke, vaccination_csv  # noqa: E402
from connectors.sources.base import UNREADABLE, Problem, Record, detect_encoding  # noqa: E402
from phr_server import search  # noqa: E402
from phr_server.indexing import COMMON, TYPES  # noqa: E402


class Finding(AssertionError):
    """An input broke a property."""


class Hang(Finding):
    pass


# --- cells and lines ----------------------------------------------------------------------------

DIGITS = st.text("0123456789", min_size=0, max_size=12)
ODD = st.sampled_from(
    ["", " ", "０１２", "①", "²", "٣", "1e9", "nan", "-1", "99999999", "20250230", "5010430",
     "4640107", "00000000", "99991231", "18671231", "202513", "5000101", "1.5", "１.５",
     "\x00", "\ufeff", "\u3000", "\"", "'", "\r", "\n", "\x1a", "テスト", "ｱｲｳ", "𠀋", "\u202e"]
)  # fmt: skip
CELL = st.one_of(DIGITS, ODD, st.text(max_size=10))


SAMPLES = ROOT / "connectors" / "samples"


def _sample_lines(name: str) -> list[str]:
    """The sample export's lines: valid records to start from (and to break one cell of)."""
    data = (SAMPLES / name).read_bytes().rstrip(b"\x1a")
    text = data.decode(detect_encoding(data))
    return [x for x in text.splitlines() if x.strip()]


@st.composite
def _edited(draw: st.DrawFn, templates: list[str]) -> str:
    """A valid line with one cell replaced (or kept)."""
    cells = draw(st.sampled_from(templates)).split(",")
    if draw(st.booleans()):
        cells[draw(st.integers(0, len(cells) - 1))] = draw(CELL)
    return ",".join(cells)


def _uke_lines() -> st.SearchStrategy[list[str]]:
    medical, pharmacy = _sample_lines("RECEIPTC.UKE"), _sample_lines("RECEIPTY.UKE")
    kinds = [*sorted(uke.RECORDS), "XX", "", "re"]
    record = st.tuples(st.sampled_from(kinds), st.lists(CELL, max_size=48))
    random_line = record.map(lambda r: ",".join([r[0], *r[1]]))

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        lines = draw(st.sampled_from([medical, pharmacy]))
        if draw(st.booleans()):  # the whole sample with one line edited
            at = draw(st.integers(0, len(lines) - 1))
            return [*lines[:at], draw(_edited([lines[at]])), *lines[at + 1 :]]
        start, body = lines[0], lines[1:-1]
        out = [draw(st.one_of(st.just(start), _edited([start]), random_line))]
        out += draw(st.lists(st.one_of(_edited(body), random_line), max_size=14))
        out += draw(st.sampled_from([[lines[-1]], [], ["GO,1"], [lines[-1], "RE,1"]]))
        return out

    return build()


def _csv_lines(headers: list[str], sample: str) -> st.SearchStrategy[list[str]]:
    rows = _sample_lines(sample)[1:]
    row = st.lists(CELL, min_size=0, max_size=len(headers) + 2).map(",".join)
    quoted = st.lists(CELL.map(lambda c: '"' + c.replace('"', '""') + '"'), max_size=len(headers))
    head = st.sampled_from([",".join(headers)] * 3 + [",".join(reversed(headers)), "", "a,b"])
    body = st.lists(st.one_of(_edited(rows), _edited(rows), row, quoted.map(",".join)), max_size=8)
    return st.tuples(head, body).map(lambda t: [t[0], *t[1]])


ENCODINGS = st.sampled_from(["cp932", "cp932", "utf-8", "utf-8-sig", "latin-1"])
NEWLINES = st.sampled_from(["\r\n", "\n", "\r"])


@st.composite
def files(draw: st.DrawFn, lines: st.SearchStrategy[list[str]]) -> bytes:
    """A file's bytes: the lines encoded one way, then perhaps cut, or with bytes spliced in."""
    text = draw(NEWLINES).join(draw(lines))
    data = text.encode(draw(ENCODINGS), errors="replace")
    if draw(st.booleans()):
        data += b"\r\n\x1a"
    mutation = draw(st.sampled_from(["none", "none", "cut", "splice"]))
    if mutation == "cut" and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]
    return data


# --- the properties -----------------------------------------------------------------------------


@dataclass
class Stats:
    """What one target's inputs gave."""

    inputs: int = 0  # run
    records: int = 0  # accepted: Records, or a parsed Query
    problems: int = 0  # rejections, each checked to be explained
    slowest: float = 0.0  # seconds, the slowest single input
    findings: list[str] = field(default_factory=list)


def check_reader(
    read: Callable[[Path], Iterable[Record | Problem]],
    layout: Iterable[str],
    path: Path,
    data: bytes,
    stats: Stats,
) -> None:
    """Run a reader over `data` (written to `path`) and check every item it yields."""
    path.write_bytes(data)
    fields = frozenset(layout) | {UNREADABLE}
    lines = max(1, len(data.splitlines()))
    for item in read(path):
        if isinstance(item, Record):
            stats.records += 1
            if not 1 <= item.line <= lines:
                raise Finding(f"record at line {item.line} of a {lines}-line file")
            continue
        if not isinstance(item, Problem):
            raise Finding(f"the reader yielded a {type(item).__name__}")
        stats.problems += 1
        if item.file != path.name:
            raise Finding("a problem without its file")
        if not 1 <= item.line <= lines:
            raise Finding(f"a problem at line {item.line} of a {lines}-line file")
        if item.field not in fields:
            raise Finding("a problem naming no field of the layout")
        if not item.reason or not isinstance(item.reason, str):
            raise Finding("a problem without a reason")


SEARCH_NAMES = sorted(
    {n for spec in TYPES.values() for n in spec.params}
    | set(COMMON)
    | search.CONTROL
    | {"foo", "", ":", "_id:exact", "code:text", "patient:Patient", "date:missing"}
)
SEARCH_VALUES = st.one_of(
    CELL,
    st.sampled_from(search.PREFIXES).flatmap(
        lambda p: st.sampled_from(["2025", "2025-03", "2025-03-09", "2025-02-30", "x"]).map(
            lambda d: p + d
        )
    ),
    st.tuples(CELL, CELL).map("|".join),
    st.lists(CELL, min_size=1, max_size=4).map(",".join),
    st.sampled_from(["Patient/x", "Patient/a/b", "-date", "date", "count", "Observation:patient"]),
)
SEARCH_ARGS = st.tuples(
    st.sampled_from(sorted(TYPES)),
    st.lists(
        st.tuples(st.one_of(st.sampled_from(SEARCH_NAMES), st.text(max_size=8)), SEARCH_VALUES),
        max_size=6,
    ),
)


def check_search(rtype: str, args: list[tuple[str, str]], stats: Stats) -> None:
    """The server's parser: a Query, or a BadRequest that names the parameter and says why."""
    try:
        search.parse(rtype, args, b"fuzz-cursor-key-0123456789abcdef")
    except search.BadRequest as exc:
        stats.problems += 1
        if not isinstance(exc.param, str) or not str(exc):
            raise Finding("a BadRequest without its parameter or reason") from None
        return
    stats.records += 1


# --- derived inputs -----------------------------------------------------------------------------

VARIANTS = 16  # inputs derived from each hypothesis example (the example itself is the first)


def file_variants(data: bytes) -> list[bytes]:
    """The file, then the same file cut after each of its first lines (a truncated export),
    then single bytes replaced at positions and values drawn from the file's own hash."""
    out = [data]
    ends = [i + 1 for i, b in enumerate(data) if b == 0x0A][: VARIANTS // 2]
    out += [data[:e] for e in ends]
    rng = random.Random(zlib.crc32(data))  # noqa: S311 - reproducible positions, not secrets
    while len(out) < VARIANTS and data:
        at = rng.randrange(len(data))
        out.append(data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :])
    return out


def search_variants(value: tuple[str, list[tuple[str, str]]]) -> list[Any]:
    """The query, each parameter alone, the parameters reversed, and the query against every
    other resource type."""
    rtype, args = value
    out: list[Any] = [value, (rtype, args[::-1])]
    out += [(rtype, [a]) for a in args]
    out += [(t, args) for t in sorted(TYPES) if t != rtype]
    return out[:VARIANTS]


# --- running ------------------------------------------------------------------------------------


def _alarm(_sig: int, _frame: FrameType | None) -> None:
    raise Hang("no answer within the hang limit")


Target = tuple[st.SearchStrategy[Any], Callable[[Any, Stats], None], Callable[[Any], list[Any]]]


def targets(tmp: Path) -> dict[str, Target]:
    """name → (strategy, check of one input, the inputs derived from a drawn example)."""
    return {
        "uke": (
            files(_uke_lines()),
            lambda d, s: check_reader(uke.read, uke.LAYOUT, tmp / "RECEIPTC.UKE", d, s),
            file_variants,
        ),
        "mch_csv": (
            files(_csv_lines(mch_csv.HEADERS, "mch.csv")),
            lambda d, s: check_reader(mch_csv.read, mch_csv.HEADERS, tmp / "mch.csv", d, s),
            file_variants,
        ),
        "vaccination_csv": (
            files(_csv_lines(vaccination_csv.HEADERS, "vaccination.csv")),
            lambda d, s: check_reader(
                vaccination_csv.read, vaccination_csv.HEADERS, tmp / "vaccination.csv", d, s
            ),
            file_variants,
        ),
        "fhir_search": (SEARCH_ARGS, lambda a, s: check_search(a[0], a[1], s), search_variants),
    }


def fuzz(
    name: str,
    target: Target,
    examples: int,
    round_seed: int,
    stats: Stats,
    hang: float = 10.0,
) -> None:
    """One round of `examples` hypothesis examples, each with its derived inputs; a broken
    property is recorded, never raised."""
    strategy, check, variants = target

    @seed(round_seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example: Any) -> None:
        for value in variants(example):
            stats.inputs += 1
            started = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, hang)
            try:
                check(value, stats)
            except Finding as exc:
                stats.findings.append(f"{name}: {exc}: {value!r}"[:2000])
            except Exception as exc:  # a crash: the property says none may happen
                what = f"{name}: crash {type(exc).__name__}: {exc}: {value!r}"
                stats.findings.append(what[:2000])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            stats.slowest = max(stats.slowest, time.perf_counter() - started)

    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        run()
    finally:
        signal.signal(signal.SIGALRM, previous)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=1_000_000, help="in all, shared by the targets")
    ap.add_argument("--round", type=int, default=2_000, help="hypothesis examples per round")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--hang", type=float, default=10.0, help="seconds one input may take")
    args = ap.parse_args()
    started = time.perf_counter()
    results: dict[str, Stats] = {}
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - memory, not the disk; mkdtemp makes a private 0700 directory in it
    with tempfile.TemporaryDirectory(prefix="fuzz-readers-", dir=shm) as tmp:
        plan = targets(Path(tmp))
        per = args.inputs // len(plan)
        for i, (name, target) in enumerate(plan.items()):
            stats = results[name] = Stats()
            t0 = time.perf_counter()
            r = 0
            while stats.inputs < per:
                n = max(1, min(args.round, (per - stats.inputs) // VARIANTS))
                fuzz(name, target, n, args.seed * 1000 + i * 100_000 + r, stats, args.hang)
                r += 1
            print(
                f"{name}: {stats.inputs} inputs, {stats.records} accepted, {stats.problems} "
                f"rejections explained, {len(stats.findings)} findings, slowest "
                f"{stats.slowest * 1000:.1f} ms, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            for f in stats.findings[:20]:
                print("  FINDING", f, flush=True)
    total = sum(s.inputs for s in results.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    findings = sum(len(s.findings) for s in results.values())
    print(
        f"total: {total} inputs in {time.perf_counter() - started:.0f} s, "
        f"{findings} findings, peak RSS {peak:.0f} MB"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
