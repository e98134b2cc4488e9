"""Guardianship: a linked person is guardian of the children their city names, until each
child turns GUARDIANSHIP_END_AGE; when the person asked for it, each child gets a consent on
their behalf. The city names children in a link answer or later (a child born after the
mother linked), and says when a guardianship ends (custody changed, a record corrected)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import records
from consent.linkage.attributes import birthdate_alias
from consent.linkage.provider_consents import child_consent, self_consent
from consent.models import Guardianship, LinkRequest, PatientLink, utcnow
from consent.records import ACTIVE, PROVIDER, ConsentError, patients_key

# Guardianship ends on the child's birthday at this age. A module constant because a new
# documented setting would belong in phr_core's service table.
GUARDIANSHIP_END_AGE = 18

RELATIONSHIPS = ("mother", "father", "guardian")
MAX_CODE = 128


@dataclass(frozen=True)
class Child:
    code: str
    birth_date: date
    relationship: str


def guardianship_end(birth_date: date) -> date:
    """The child's birthday at GUARDIANSHIP_END_AGE (29 February → 1 March)."""
    year = birth_date.year + GUARDIANSHIP_END_AGE
    try:
        return birth_date.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def parse_children(raw: object) -> list[Child]:
    """The `children` of a link answer or guardianship call, checked."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConsentError("children must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise ConsentError("each child must be an object")
        code = item.get("code")
        if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE:
            raise ConsentError("each child needs a code")
        try:
            born = date.fromisoformat(str(birthdate_alias(item).get("birthdate")))
        except ValueError:
            raise ConsentError("each child needs birthdate as YYYY-MM-DD") from None
        relationship = item.get("relationship", "guardian")
        if relationship not in RELATIONSHIPS:
            raise ConsentError("relationship must be mother, father or guardian")
        out.append(Child(code, born, relationship))
    return out


def add_children(
    s: Session,
    *,
    guardian: str,
    municipality: str,
    children: Sequence[Child],
    consent_for_children: bool,
    recorded_by: str,
    today: date | None = None,
) -> list[Guardianship]:
    """Record that `guardian` is a guardian of these children (adults are skipped) and, when
    asked and the guardian's own city consent is active, consent for each child with the same
    categories."""
    today = today or utcnow().date()
    added = []
    parent_consent = self_consent(s, guardian, municipality) if consent_for_children else None
    for child in children:
        ends = guardianship_end(child.birth_date)
        if ends <= today:
            continue
        g = s.scalar(
            select(Guardianship).where(
                Guardianship.guardian == guardian,
                Guardianship.municipality == municipality,
                Guardianship.child_code == child.code,
            )
        )
        if g is None:
            g = Guardianship(
                guardian=guardian,
                municipality=municipality,
                child_code=child.code,
                relationship=child.relationship,
                ends_on=ends,
            )
            s.add(g)
        else:
            g.relationship, g.ends_on = child.relationship, ends
        added.append(g)
        if parent_consent is not None:
            child_consent(s, parent_consent, child.code, recorded_by)
    s.flush()
    records.touch(s, [patients_key(guardian)])
    return added


def add_children_by_code(
    s: Session,
    *,
    municipality: str,
    guardian_code: str,
    children: Sequence[Child],
    recorded_by: str,
    today: date | None = None,
) -> list[str]:
    """The connector names a linked parent by their code (e.g. a child born after the mother
    linked). Returns the guardians' subjects found (none when the code is not linked)."""
    guardians = list(
        s.scalars(
            select(PatientLink.subject).where(
                PatientLink.municipality == municipality, PatientLink.code == guardian_code
            )
        )
    )
    for guardian in guardians:
        add_children(
            s,
            guardian=guardian,
            municipality=municipality,
            children=children,
            consent_for_children=_asked_for_children(s, guardian, municipality),
            recorded_by=recorded_by,
            today=today,
        )
    return guardians


def _asked_for_children(s: Session, subject: str, municipality: str) -> bool:
    last = s.scalar(
        select(LinkRequest)
        .where(
            LinkRequest.subject == subject,
            LinkRequest.municipality == municipality,
            LinkRequest.status == "matched",
        )
        .order_by(LinkRequest.answered_at.desc())
        .limit(1)
    )
    return bool(last and last.include_children)


def guardianships(s: Session, guardian: str, municipality: str | None = None) -> list[Guardianship]:
    q = select(Guardianship).where(Guardianship.guardian == guardian)
    if municipality is not None:
        q = q.where(Guardianship.municipality == municipality)
    return list(s.scalars(q.order_by(Guardianship.municipality, Guardianship.child_code)))


def end_guardianship(
    s: Session,
    *,
    municipality: str,
    guardian_code: str,
    child_code: str,
    recorded_by: str,
    reason: str | None = None,
) -> list[str]:
    """The city says this person is no longer (or never was) a guardian of this child (custody
    changed, a record was corrected): the guardianship goes, and with it the consents the
    guardian gave for the child. Returns the guardians' subjects affected."""
    guardians = list(
        s.scalars(
            select(PatientLink.subject).where(
                PatientLink.municipality == municipality, PatientLink.code == guardian_code
            )
        )
    )
    affected = []
    for guardian in guardians:
        rows = list(
            s.scalars(
                select(Guardianship).where(
                    Guardianship.guardian == guardian,
                    Guardianship.municipality == municipality,
                    Guardianship.child_code == child_code,
                )
            )
        )
        for row in rows:
            s.delete(row)
        for view in records.current(
            s, kind=PROVIDER, subject=guardian, actor=municipality, status=ACTIVE
        ):
            if view.record.patient_code == child_code:
                records.withdraw(s, view, recorded_by=recorded_by, reason=reason)
        if rows:
            affected.append(guardian)
            records.touch(s, [patients_key(guardian)])
    s.flush()
    return affected
