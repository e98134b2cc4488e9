"""A person's consents that a city provides data: their own, and the ones they give on a
child's behalf (mirroring their own)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from consent import records
from consent.records import ACTIVE, PROVIDER, ConsentView


def self_consent(s: Session, subject: str, municipality: str) -> ConsentView | None:
    """The subject's active consent that `municipality` provides their own data."""
    for view in records.current(
        s, kind=PROVIDER, subject=subject, actor=municipality, status=ACTIVE
    ):
        if view.record.patient_code is None:
            return view
    return None


def child_consent(s: Session, parent: ConsentView, child_code: str, recorded_by: str) -> None:
    """The guardian's consent on the child's behalf, mirroring their own (if none is active)."""
    city = parent.record.actor
    for view in records.current(
        s, kind=PROVIDER, subject=parent.record.subject, actor=city, status=ACTIVE
    ):
        if view.record.patient_code == child_code:
            return
    records.create(
        s,
        kind=PROVIDER,
        subject=parent.record.subject,
        actor=city,
        actor_name=parent.version.actor_name,
        categories=parent.version.categories,
        purpose=parent.version.purpose,
        recorded_by=recorded_by,
        patient=(city, child_code),
        collection_method=parent.version.collection_method,
        language=parent.version.language,
    )
