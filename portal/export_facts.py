"""A child's facts for the printable record (portal.print_pdf) and the CSV (portal.export_csv):
vaccinations and checkup findings, read from every city's PHR server one search page at a time
in date order (`_sort=date`) and merged across cities, so neither file ever holds a child's
records in memory.

Unlike the records pages, these files leave nothing out silently: a city whose PHR server
cannot be read fails the whole request (phr.Unavailable, the "try again later" page), because
a printout without one city's vaccinations reads as doses never given."""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from portal import phr
from portal.care import growth
from portal.federated import Reader, Source
from portal.plus_pages import Person
from portal.records import concept

PAGE_SIZE = str(phr.PAGE_SIZE)
# One child's records of one type in one city, read in full: 1,000 pages of 200 is 200,000
# records, far past a childhood of checkups and doses (daily measurements for 18 years are
# under 7,000 days), while it bounds what a server paging without end makes the portal read
# (and draw, for the PDF) before the request fails.
MAX_PAGES_PER_SEARCH = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class Vaccination:
    day: str  # YYYY-MM-DD, or YYYY-MM / YYYY when the record is that precise
    vaccine: str
    dose: str  # "" when the record has no dose number
    city: str


@dataclass(frozen=True)
class Finding:
    """One Observation: a checkup finding or a body measurement."""

    day: str
    item: str
    value: str
    unit: str
    city: str
    # A growth measurement: the measure (portal.care.growth.MEASURES) and its point in the
    # measure's unit; None for any other finding or when the child's birth date is unknown.
    measure: str | None = None
    point: growth.Measurement | None = None


@dataclass(frozen=True)
class ChildFacts:
    """What a child's printout and CSV say; the two record streams are read lazily, once."""

    child: Person
    label: str
    cities: list[str]
    vaccinations: Iterable[Vaccination]
    findings: Iterable[Finding]

    @property
    def sex(self) -> str | None:
        return self.child.sex if self.child.sex in ("male", "female") else None


def child_facts(found: Reader, child: Person, lang: str) -> ChildFacts:
    """The child's facts, read as the files are written. Raises phr.Unavailable now when a
    city holding children's records could not be read for this request."""
    sources = list(child.sources)
    # A server that could not be read may hold this child under another city's Patient (which
    # of its children's Patients is this child is only known from reading them): no file then.
    if any(s.server in found.failed for s in found.sources if s.relationship == "child"):
        raise phr.Unavailable("a PHR server holding the children's records cannot be read")
    cities = list(dict.fromkeys(found.city(s.municipality, lang) for s in sources))

    def vaccinations() -> Iterator[Vaccination]:
        return _merged(found, sources, "Immunization", lambda src, r: _vaccination(found, src, r))

    def findings() -> Iterator[Finding]:
        return _merged(found, sources, "Observation", lambda src, r: _finding(found, src, r, child))

    return ChildFacts(child, child.label(lang), cities, Lazy(vaccinations), Lazy(findings))


class Lazy(Iterable[T]):
    """An iterable that starts its reads only when iterated."""

    def __init__(self, start: Callable[[], Iterator[T]]) -> None:
        self._start = start

    def __iter__(self) -> Iterator[T]:
        return self._start()


def _merged(
    found: Reader, sources: list[Source], rtype: str, row: Callable[[Source, dict[str, Any]], T]
) -> Iterator[T]:
    """Rows of every source in date order: each source's pages come sorted by the server;
    heapq.merge holds one row per source."""
    streams = [map(functools.partial(row, src), _resources(found, src, rtype)) for src in sources]
    return heapq.merge(*streams, key=lambda r: r.day)  # type: ignore[attr-defined]  # every row type has .day


def _resources(found: Reader, src: Source, rtype: str) -> Iterator[dict[str, Any]]:
    """One Patient's resources of one type, oldest first, one page in memory at a time.
    Raises phr.Unavailable when the server pages without end (phr.follow)."""
    client = found.client(src.server)
    params = [("patient", src.patient_id), ("_sort", "date"), ("_count", PAGE_SIZE)]

    def read(cursor: str | None) -> phr.Page:
        try:
            return client.search(rtype, params + ([("_cursor", cursor)] if cursor else []))
        except phr.TokenRefused:
            if src.server == found.home:
                raise  # signed out: sign in again
            raise phr.Unavailable("another city's PHR server refused its token") from None

    for page in phr.follow(read, MAX_PAGES_PER_SEARCH):
        yield from page.resources


def _day(value: Any) -> str:
    return str(value or "")[:10]


def _vaccination(found: Reader, src: Source, r: dict[str, Any]) -> Vaccination:
    doses = [p.get("doseNumberPositiveInt") for p in r.get("protocolApplied", [])]
    return Vaccination(
        _day(r.get("occurrenceDateTime")),
        concept(r.get("vaccineCode")),
        str(doses[0]) if doses and doses[0] else "",
        found.city(src.municipality),
    )


def _finding(found: Reader, src: Source, r: dict[str, Any], child: Person) -> Finding:
    city = found.city(src.municipality)
    day = _day(r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start"))
    item = concept(r.get("code"))
    if "valueQuantity" in r:
        q = r["valueQuantity"]
        value, unit = f"{q.get('value', '')}", str(q.get("unit") or q.get("code") or "")
    elif "valueCodeableConcept" in r:
        value, unit = concept(r["valueCodeableConcept"]), ""
    else:
        raw = next((r[k] for k in ("valueString", "valueBoolean", "valueInteger") if k in r), "")
        value, unit = str(raw), ""
    if child.birth_date is not None:
        measured = growth.measurements([r], child.birth_date)
        for measure, points in measured.items():
            if points:
                return Finding(day, item, value, unit, city, measure, points[0])
    return Finding(day, item, value, unit, city)


def age_months(child: Person, day: str) -> float | None:
    """The child's age in months on `day` (the growth charts' axis); None when unknown."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        return None
    if child.birth_date is None or when < child.birth_date:
        return None
    return (when - child.birth_date).days / growth.DAYS_PER_MONTH
