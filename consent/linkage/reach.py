"""Whom the links reach: the patients a person may see (the PHR server's question), and the
codes a city may extract for a category (the connector's)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import records
from consent.linkage.guardianship import guardianships
from consent.models import ConsentRecord, ConsentVersion, Guardianship, PatientLink, utcnow
from consent.records import ACTIVE, PROVIDER, ConsentError


def patients(s: Session, subject: str) -> list[tuple[str, str, str, date | None]]:
    """Everyone the subject may reach: (municipality, code, relationship, guardianship end).
    The end date is filtered at read time, so a cached answer stays right as days pass."""
    out: list[tuple[str, str, str, date | None]] = [
        (link.municipality, link.code, "self", None)
        for link in s.scalars(
            select(PatientLink)
            .where(PatientLink.subject == subject)
            .order_by(PatientLink.municipality)
        )
    ]
    out.extend(
        (g.municipality, g.child_code, "child", g.ends_on) for g in guardianships(s, subject)
    )
    return out


def consented_codes(
    s: Session, municipality: str, category: str, now: datetime | None = None
) -> list[str]:
    """Codes the city may extract for `category`: people with an active consent of their own,
    and children with an active consent from a current guardian."""
    return sorted(consented_since(s, municipality, category, now))


def consented_since(
    s: Session, municipality: str, category: str, now: datetime | None = None
) -> dict[str, datetime]:
    """`consented_codes`, each with when the newest consent that covers it was given. A
    withdrawal ends a consent for good; consenting again makes a new one, so this moves
    whenever consent was interrupted (and the records perhaps deleted in between): the
    connector then forgets what it had sent for that person and sends it all again."""
    if category not in records.CATEGORIES:
        raise ConsentError("unknown category")
    now = now or utcnow()
    today = now.date()
    # Columns only, no ORM objects: a city has tens of thousands of consenting people.
    rows = s.execute(
        select(
            ConsentRecord.subject,
            ConsentRecord.patient_code,
            ConsentVersion.categories,
            ConsentVersion.period_end,
            ConsentRecord.created_at,
        )
        .join(
            ConsentVersion,
            (ConsentVersion.consent_id == ConsentRecord.id)
            & (ConsentVersion.version == ConsentRecord.current_version),
        )
        .where(
            ConsentRecord.kind == PROVIDER,
            ConsentRecord.actor == municipality,
            ConsentRecord.status == ACTIVE,
        )
    ).all()
    own: dict[str, datetime] = {}
    for_children: dict[tuple[str, str], datetime] = {}
    for subject, patient_code, categories, end, created in rows:
        if category not in categories or (end is not None and records.as_utc(end) <= now):
            continue
        created = records.as_utc(created) or created
        if patient_code is None:
            own[subject] = max(created, own.get(subject, created))
        else:
            key = (subject, patient_code)
            for_children[key] = max(created, for_children.get(key, created))
    codes: dict[str, datetime] = {}

    def add(code: str, since: datetime) -> None:
        codes[code] = max(since, codes.get(code, since))

    if own:
        for subject, code in s.execute(
            select(PatientLink.subject, PatientLink.code).where(
                PatientLink.municipality == municipality
            )
        ):
            if subject in own:
                add(code, own[subject])
    if for_children:
        for guardian, child_code in s.execute(
            select(Guardianship.guardian, Guardianship.child_code).where(
                Guardianship.municipality == municipality, Guardianship.ends_on > today
            )
        ):
            if (guardian, child_code) in for_children:
                add(child_code, for_children[(guardian, child_code)])
    return codes
