"""What the signed-in home page says is next: for someone with no city consent yet, that one
step; otherwise, per child, the next vaccinations (overdue and due first, with dates, from the
schedule engine), the latest growth measurements with their percentile band, the latest
checkup day, and the number of unread notices. The records are read as the record pages read
them (portal.federated, the person's own tokens); when they cannot be read now the home page
still answers, with the links, and says so."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from consent import linkage, notices
from consent.models import Municipality
from phr_core.webapp import database
from portal import phr
from portal.care import growth
from portal.care import schedule as engine
from portal.federated import reader
from portal.pages import JST
from portal.plus_pages import Person, people

NEXT_DOSES = 3  # how many upcoming doses the home page names per child
ORDER = {engine.OVERDUE: 0, engine.DUE: 1, engine.NOT_YET: 2}


@dataclass
class ChildNext:
    person: Person
    doses: list[engine.DoseStatus] = field(default_factory=list)
    growth: list[dict[str, str]] = field(default_factory=list)
    checkup: str = ""  # the day of the latest checkup record, "" for none


def needs_city_consent(subject: str) -> bool:
    """True when the person has consented for no city yet: no record can arrive until then."""
    with database().session() as s:
        codes = s.scalars(select(Municipality.code)).all()
        return not any(linkage.self_consent(s, subject, code) for code in codes)


def unread_notices(subject: str) -> int:
    with database().session() as s:
        return notices.unread(s, subject)


def next_doses(statuses: list[engine.DoseStatus]) -> list[engine.DoseStatus]:
    """Overdue first, then due, then the coming ones by date; at most NEXT_DOSES."""
    open_ = [s for s in statuses if s.status in ORDER]
    open_.sort(key=lambda s: (ORDER[s.status], s.next_date or date.max))
    return open_[:NEXT_DOSES]


def children_next(subject: str, lang: str) -> list[ChildNext] | None:
    """Each child's next steps; None when the records cannot be read now."""
    try:
        found = reader(subject)
        out = []
        for child in people(found):
            if child.relationship != "child":
                continue
            out.append(_child_next(found, child, lang))
        return out
    except (phr.SignedOut, phr.Unavailable, phr.NotReachable):
        return None


def _child_next(found: Any, child: Person, lang: str) -> ChildNext:
    sources = list(child.sources)
    observations = [o for _, o in found.records(sources, "Observation")]
    days = [str(o.get("effectiveDateTime") or "")[:10] for o in observations]
    result = ChildNext(child, checkup=max((d for d in days if d), default=""))
    if child.birth_date is None:
        return result
    today = datetime.now(JST).date()
    doses = engine.doses_from([i for _, i in found.records(sources, "Immunization")])
    result.doses = next_doses(engine.schedule(child.birth_date, doses, today, child.sex))
    measured = growth.measurements(observations, child.birth_date)
    sex = child.sex if child.sex in ("male", "female") else None
    for measure, (_, unit, name_ja, name_en) in growth.MEASURES.items():
        if not measured[measure]:
            continue
        last = measured[measure][-1]
        ref = growth.reference(measure, sex) if sex else ()
        result.growth.append(
            {
                "name": name_ja if lang == "ja" else name_en,
                "value": f"{last.value:g} {unit}",
                "date": last.day.isoformat(),
                "band": growth.band_words(growth.band(ref, last), lang) if ref else "",
            }
        )
    return result
