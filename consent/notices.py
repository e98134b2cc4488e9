"""The notices inbox ("お知らせ / Notices"): push-type guidance kept per person.

New records: after each write that changed something, the PHR server reports the
(municipality, code) pairs whose records changed (`POST /api/v1/arrivals`, consent/API.md);
`record_arrivals` stores each pair's last update and gives every person who reaches that code
(the person themself, and each current guardian of a child) one notice per day and code.
Vaccinations falling due are added by `add_due` with one notice per dose."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent.models import Arrival, Guardianship, Notice, PatientLink, utcnow
from phr_core.db import rowcount

RECORDS = "records"
VACCINATION = "vaccination"
MAX_CODES = 5000


def _reachers(s: Session, municipality: str, code: str, today: object) -> list[tuple[str, str]]:
    """(subject, relationship) of everyone who reaches this code."""
    out = [
        (sub, "self")
        for sub in s.scalars(
            select(PatientLink.subject).where(
                PatientLink.municipality == municipality, PatientLink.code == code
            )
        )
    ]
    out += [
        (sub, "child")
        for sub in s.scalars(
            select(Guardianship.guardian).where(
                Guardianship.municipality == municipality,
                Guardianship.child_code == code,
                Guardianship.ends_on > today,
            )
        )
    ]
    return out


def _add(s: Session, notice: Notice) -> bool:
    """Insert unless the same event is already there (savepoint: a concurrent twin is fine)."""
    exists = s.scalar(
        select(Notice.id).where(
            Notice.subject == notice.subject,
            Notice.municipality == notice.municipality,
            Notice.code == notice.code,
            Notice.key == notice.key,
        )
    )
    if exists is not None:
        return False
    try:
        with s.begin_nested():
            s.add(notice)
    except IntegrityError:
        return False
    return True


def record_arrivals(
    s: Session, municipality: str, codes: Iterable[str], now: datetime | None = None
) -> int:
    """Note that records arrived for these codes; returns how many notices were added."""
    now = now or utcnow()
    added = 0
    day = now.date().isoformat()
    for code in dict.fromkeys(codes):
        row = s.get(Arrival, (municipality, code))
        if row is None:
            s.add(Arrival(municipality=municipality, code=code, last_at=now))
        else:
            row.last_at = now
        for subject, relationship in _reachers(s, municipality, code, now.date()):
            added += _add(
                s,
                Notice(
                    subject=subject,
                    kind=RECORDS,
                    municipality=municipality,
                    code=code,
                    relationship=relationship,
                    key=f"{RECORDS}:{day}",
                    params={"date": day},
                    created_at=now,
                ),
            )
    s.flush()
    return added


def add_due(
    s: Session,
    subject: str,
    *,
    municipality: str,
    code: str,
    relationship: str,
    vaccine: str,
    vaccine_en: str,
    series: str,
    dose: int,
    due: str,
    label: str = "",
    label_en: str = "",
    now: datetime | None = None,
) -> bool:
    """One notice that a vaccination dose falls due (once per dose of a series)."""
    return _add(
        s,
        Notice(
            subject=subject,
            kind=VACCINATION,
            municipality=municipality,
            code=code,
            relationship=relationship,
            key=f"{VACCINATION}:{series}:{dose}"[:64],
            params={
                "vaccine": vaccine,
                "vaccine_en": vaccine_en,
                "dose": dose,
                "due": due,
                **({"label": label, "label_en": label_en} if label else {}),
            },
            created_at=now or utcnow(),
        ),
    )


def last_arrival(s: Session, pairs: Iterable[tuple[str, str]]) -> datetime | None:
    """The latest arrival among these (municipality, code) pairs."""
    latest = None
    for municipality, code in pairs:
        row = s.get(Arrival, (municipality, code))
        if row is not None and (latest is None or row.last_at > latest):
            latest = row.last_at
    return latest


def inbox(s: Session, subject: str, limit: int = 100) -> list[Notice]:
    return list(
        s.scalars(
            select(Notice)
            .where(Notice.subject == subject)
            .order_by(Notice.created_at.desc(), Notice.id.desc())
            .limit(limit)
        )
    )


def unread(s: Session, subject: str) -> int:
    return (
        s.scalar(
            select(func.count())
            .select_from(Notice)
            .where(Notice.subject == subject, Notice.read_at.is_(None))
        )
        or 0
    )


def mark_read(s: Session, subject: str, notice_id: int | None = None) -> int:
    """Mark one notice (or all of them) read; returns how many changed."""
    q = update(Notice).where(Notice.subject == subject, Notice.read_at.is_(None))
    if notice_id is not None:
        q = q.where(Notice.id == notice_id)
    return rowcount(s.execute(q.values(read_at=utcnow())))


def forget(s: Session, subject: str) -> None:
    """Account deletion: the person's notices go with their data."""
    for n in s.scalars(select(Notice).where(Notice.subject == subject)):
        s.delete(n)
