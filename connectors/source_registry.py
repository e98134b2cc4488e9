"""The sources a connector can load, each registered once with what it needs: how its export
files are recognised, the reader that streams them, the consent category that gates them, how a
row finds its person, and the mapper to FHIR. The pipeline and `phr connector run` look sources
up here by name or by file, so a new source is one `register(Source(...))`, not a new branch in
every `if source == …`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.mapping import mch as map_mch
from connectors.mapping import uke as map_uke
from connectors.mapping import vaccination as map_vacc
from connectors.mapping.common import Context, Entry, MappingError
from connectors.pseudonym import Pseudonymizer
from connectors.sources import mch_csv, uke, vaccination_csv
from connectors.sources.base import Problem, Record, sniff_file

# A row's person: the pseudonymous code, or None when that person has not consented (the row
# then stops at the gate: never mapped, stored or sent).
Gate = Callable[[Context, Pseudonymizer, Record], str | None]
# A consented row's resources; the mapping functions are looked up when called, not when
# registered, so a test may wrap them.
Mapper = Callable[[Context, Pseudonymizer, Record, str], list[Entry]]
Reader = Callable[[Path], Iterator[Record | Problem]]
Remember = Callable[[Context, Pseudonymizer, Record], None]

HEAD_BYTES = 4096  # what file recognition reads of a file


@dataclass(frozen=True)
class Source:
    """One kind of export file and everything the pipeline does with its rows."""

    name: str  # in reports, checkpoints, record identifier systems and the consent file
    category: str  # the consent category that lets its rows through
    read: Reader
    gate: Gate
    map: Mapper
    # File kinds, tried for every source in this order: the file name's suffix, the first
    # bytes, then a column name in the first line.
    suffixes: tuple[str, ...] = ()
    magic: tuple[bytes, ...] = ()
    header_mark: str | None = None
    # Rows name the person by insurance card, which only the resident register resolves.
    needs_register: bool = False
    # Rows a resumed run skips (acknowledged before the crash) still hand their identifier
    # to the file's Context, so the rows after them get the identifiers a full run gives.
    remember: Remember | None = None


def by_resident_number(ctx: Context, pseudo: Pseudonymizer, rec: Record) -> str | None:
    """CSV rows carry the resident number: its code, when consented. The row's own key is
    pseudonymised too (it goes into identifiers the PHR server stores)."""
    code = pseudo.code(rec.resident)
    if code not in ctx.consented:
        return None
    rec.key = pseudo.record_key(rec.source, rec.key)
    return code


def by_insurance_key(ctx: Context, _pseudo: Pseudonymizer, rec: Record) -> str | None:
    """Claims carry the insurance card: the register resolves it, for consented people only."""
    return ctx.index.by_insurance.get(rec.resident)


def _map_mch(ctx: Context, pseudo: Pseudonymizer, rec: Record, code: str) -> list[Entry]:
    """MCH rows may name the mother: she is linked only when she consented too."""
    mother = rec.data.get("mother")
    mother_code = pseudo.code(mother) if mother else None
    if mother_code not in ctx.consented:
        mother_code = None
    return map_mch.map_record(ctx, rec, code, mother_code)


def _map_vaccination(ctx: Context, _pseudo: Pseudonymizer, rec: Record, code: str) -> list[Entry]:
    return map_vacc.map_record(ctx, rec, code)


def _map_uke(ctx: Context, _pseudo: Pseudonymizer, rec: Record, code: str) -> list[Entry]:
    return map_uke.map_record(ctx, rec, code)


def _remember_uke(ctx: Context, pseudo: Pseudonymizer, rec: Record) -> None:
    code = by_insurance_key(ctx, pseudo, rec)
    if code is not None:
        with contextlib.suppress(MappingError):  # it was reported when it was first read
            map_uke.claim_key(ctx, rec, code)


SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Make a source known by its name (one name, one source)."""
    if source.name in SOURCES:
        raise ValueError(f"source {source.name} is registered already")
    SOURCES[source.name] = source
    return source


def get(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name}") from None


def detect_source(path: Path) -> str | None:
    """Which source a file belongs to (its name), or None when no reader fits it."""
    if not path.is_file():
        return None
    suffix = path.suffix.upper()
    for s in SOURCES.values():
        if suffix in s.suffixes:
            return s.name
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return None
    for s in SOURCES.values():
        if head.startswith(s.magic):
            return s.name
    text = head.decode(sniff_file(path), errors="ignore").splitlines()[0] if head else ""
    for s in SOURCES.values():
        if s.header_mark and s.header_mark in text:
            return s.name
    return None


def read_source(name: str, path: Path) -> Iterator[Record | Problem]:
    """The rows of one file, by its source's reader."""
    return get(name).read(path)


def csv_source(name: str, category: str, read: Reader, map: Mapper, column: str) -> Source:
    """A CSV export whose rows carry the resident number, recognised by a column name."""
    return Source(name, category, read, by_resident_number, map, header_mark=column)


# Registered in the order the consent service is asked about them.
register(csv_source(mch_csv.SOURCE, "mch", mch_csv.read, _map_mch, "記録種別"))
register(
    csv_source(
        vaccination_csv.SOURCE, "immunization", vaccination_csv.read, _map_vaccination, "ワクチン"
    )
)
register(
    Source(
        name=uke.SOURCE,
        category="claims",
        read=uke.read,
        gate=by_insurance_key,
        map=_map_uke,
        suffixes=(".UKE",),
        magic=(b"IR,", b"YK,"),
        needs_register=True,
        remember=_remember_uke,
    )
)
