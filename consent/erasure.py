"""Whose records may be erased when a person withdraws a city's consent or deletes their
account: always their own code in that city; a child's only when asked, and only when no
other current guardian on the platform could still reach the child's records (the other
parent's access is theirs, not this person's to end)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.models import Guardianship, PatientLink, utcnow


@dataclass
class Plan:
    erase: list[tuple[str, str]] = field(default_factory=list)  # (municipality, code)
    children: int = 0  # children's records to erase
    shared_children: int = 0  # kept: another guardian still reaches them


def plan(s: Session, subject: str, *, municipality: str | None = None, children: bool) -> Plan:
    today = utcnow().date()
    out = Plan()
    links = select(PatientLink).where(PatientLink.subject == subject)
    if municipality is not None:
        links = links.where(PatientLink.municipality == municipality)
    out.erase = [(x.municipality, x.code) for x in s.scalars(links.order_by(PatientLink.id))]
    q = select(Guardianship).where(Guardianship.guardian == subject, Guardianship.ends_on > today)
    if municipality is not None:
        q = q.where(Guardianship.municipality == municipality)
    for g in s.scalars(q.order_by(Guardianship.id)):
        others = s.scalar(
            select(Guardianship.id).where(
                Guardianship.municipality == g.municipality,
                Guardianship.child_code == g.child_code,
                Guardianship.guardian != subject,
                Guardianship.ends_on > today,
            )
        )
        if others is not None:
            out.shared_children += 1
        elif children:
            out.erase.append((g.municipality, g.child_code))
            out.children += 1
    return out
