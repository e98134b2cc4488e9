"""Consent records: giving, changing and withdrawing consents, each change a new version.

Two kinds, both FHIR Consent with scope `patient-privacy`:
  provider   "city X may provide my (or my child's) data of these categories to the platform";
             actor = the municipality code, action `collect`
  recipient  "app Y may read these categories for this purpose until then" (an app grant, made
             on the IdP's consent screen); actor = the OAuth client_id, action `access`

Every function takes an open session and leaves committing to the caller, and every change
writes the cache keys it touches to the change log in the same transaction (`consent.cache`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.models import ChangeLog, ConsentRecord, ConsentVersion, utcnow
from phr_core.catalogs import text

PROVIDER = "provider"
RECIPIENT = "recipient"

ACTIVE = "active"  # FHIR Consent.status
INACTIVE = "inactive"

GIVEN = "consent_given"  # ISO/IEC TS 27560 / DPV event types
UPDATED = "consent_updated"
WITHDRAWN = "consent_withdrawn"

# Data categories a person consents to, with the FHIR resource types each covers.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "mch": ("Observation", "Encounter", "RelatedPerson", "Patient"),
    "vaccination": ("Immunization",),
    "checkup": ("Observation", "Encounter", "DiagnosticReport"),
    "claims": ("ExplanationOfBenefit", "Claim", "Coverage", "MedicationDispense"),
}
# Each category in words, (Japanese, English): gettext catalogs, msgctxt `consent.category`.
CATEGORY_NAMES: dict[str, tuple[str, str]] = {
    code: (text("ja", "consent.category", code), text("en", "consent.category", code))
    for code in CATEGORIES
}
ACTIONS = ("collect", "access", "use", "disclose", "correct")  # FHIR consentaction codes


class ConsentError(ValueError):
    """A consent request that cannot be recorded; the message is safe to return."""


@dataclass(frozen=True)
class ConsentView:
    """A consent as of its current (or a given) version, with its computed status."""

    record: ConsentRecord
    version: ConsentVersion

    @property
    def id(self) -> str:
        return self.record.id

    def state(self, now: datetime | None = None) -> str:
        """`active`, `revoked` or `expired` (the grant API's words)."""
        if self.version.status != ACTIVE:
            return "revoked"
        end = as_utc(self.version.period_end)
        if end is not None and end <= (now or utcnow()):
            return "expired"
        return "active"


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored one is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def grant_key(consent_id: str) -> str:
    return f"grant:{consent_id}"


def patients_key(subject: str) -> str:
    return f"patients:{subject}"


def touch(s: Session, keys: Iterable[str]) -> None:
    """Note in the change log that these cache keys changed (committed with the change)."""
    unique = list(dict.fromkeys(keys))
    for key in unique:
        s.add(ChangeLog(key=key[:300]))
    s.info.setdefault("consent_changed_keys", set()).update(unique)


def _check_categories(categories: Sequence[str]) -> list[str]:
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ConsentError(f"unknown categories: {', '.join(unknown)}")
    return sorted(set(categories))


def create(
    s: Session,
    *,
    kind: str,
    subject: str,
    actor: str,
    actor_name: str,
    categories: Sequence[str],
    purpose: str,
    recorded_by: str,
    scopes: Sequence[str] = (),
    actions: Sequence[str] | None = None,
    period_end: datetime | None = None,
    patient: tuple[str, str] | None = None,
    collection_method: str = "web-form",
    language: str = "ja",
    now: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> ConsentView:
    """Record a new consent (version 1). `patient` = (municipality, child code) when a guardian
    consents for a child; None when the subject consents for themself. `details`: what the
    person was shown about an app (phr_core.grant_description)."""
    if kind not in (PROVIDER, RECIPIENT):
        raise ConsentError("kind must be provider or recipient")
    if not subject or not actor:
        raise ConsentError("subject and actor are required")
    now = now or utcnow()
    period_end = as_utc(period_end)
    if period_end is not None and period_end <= now:
        raise ConsentError("expires_at must be in the future")
    actions = list(actions or (["collect"] if kind == PROVIDER else ["access"]))
    if set(actions) - set(ACTIONS):
        raise ConsentError("unknown actions")
    record = ConsentRecord(
        id=str(uuid.uuid4()),
        kind=kind,
        subject=subject,
        actor=actor,
        patient_municipality=patient[0] if patient else None,
        patient_code=patient[1] if patient else None,
        created_at=now,
        current_version=1,
        status=ACTIVE,
    )
    version = ConsentVersion(
        consent_id=record.id,
        version=1,
        status=ACTIVE,
        event=GIVEN,
        actor_name=actor_name or actor,
        categories=_check_categories(categories),
        scopes=sorted(set(scopes)),
        actions=actions,
        purpose=purpose,
        period_start=now,
        period_end=period_end,
        collection_method=collection_method,
        language=language,
        recorded_at=now,
        recorded_by=recorded_by,
        details=details,
    )
    s.add(record)
    s.flush()
    s.add(version)
    s.flush()
    touch(s, [grant_key(record.id)])
    return ConsentView(record, version)


def new_version(
    s: Session,
    view: ConsentView,
    *,
    event: str,
    recorded_by: str,
    reason: str | None = None,
    now: datetime | None = None,
    **changes: object,
) -> ConsentView:
    """Add a version carrying the previous one's content with `changes` applied; the head
    points at it. Earlier versions stay as they were."""
    now = now or utcnow()
    prev = view.version
    fields = {
        c: getattr(prev, c)
        for c in (
            "status",
            "actor_name",
            "categories",
            "scopes",
            "actions",
            "purpose",
            "period_start",
            "period_end",
            "collection_method",
            "language",
            "details",
        )
    }
    if "categories" in changes:
        changes["categories"] = _check_categories(changes["categories"])  # type: ignore[arg-type]  # checked there
    fields.update(changes)
    version = ConsentVersion(
        consent_id=view.record.id,
        version=prev.version + 1,
        event=event,
        reason=reason,
        recorded_at=now,
        recorded_by=recorded_by,
        **fields,
    )
    s.add(version)
    view.record.current_version = version.version
    view.record.status = version.status
    s.flush()
    touch(s, [grant_key(view.record.id)])
    return ConsentView(view.record, version)


def withdraw(
    s: Session,
    view: ConsentView,
    *,
    recorded_by: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> ConsentView:
    """Withdraw (revoke) a consent: a new version with status inactive (the period the person
    agreed to is kept as it was). Withdrawing twice changes nothing."""
    if view.version.status != ACTIVE:
        return view
    now = now or utcnow()
    return new_version(
        s,
        view,
        event=WITHDRAWN,
        recorded_by=recorded_by,
        reason=reason,
        now=now,
        status=INACTIVE,
    )


def get(
    s: Session, consent_id: str, *, version: int | None = None, for_update: bool = False
) -> ConsentView | None:
    """The consent with its current version (or the given one), or None. `for_update` locks
    the head row (PostgreSQL), so two concurrent changes cannot both make version n+1."""
    record = s.get(ConsentRecord, consent_id, with_for_update=for_update or None)
    if record is None:
        return None
    v = s.get(ConsentVersion, (consent_id, version or record.current_version))
    return ConsentView(record, v) if v is not None else None


def revoke_grant(
    s: Session,
    grant_id: str,
    owns: Callable[[str], bool],
    *,
    recorded_by: str,
    reason: str | None = None,
) -> ConsentView | None:
    """Withdraw the app grant `grant_id` for someone who `owns` its subject (the portal: the
    signed-in person; the consent API: a subject in the caller's namespace). None when there is
    no such grant or it is not theirs, the same answer, so a stranger learns nothing of it. The
    one ownership check of revoking, whichever door the request came in by."""
    view = get(s, grant_id, for_update=True)
    if view is None or view.record.kind != RECIPIENT or not owns(view.record.subject):
        return None
    return withdraw(s, view, recorded_by=recorded_by, reason=reason)


def history(s: Session, consent_id: str) -> list[ConsentVersion]:
    """Every version, oldest first."""
    return list(
        s.scalars(
            select(ConsentVersion)
            .where(ConsentVersion.consent_id == consent_id)
            .order_by(ConsentVersion.version)
        )
    )


def current(
    s: Session,
    *,
    kind: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    status: str | None = None,
) -> list[ConsentView]:
    """Consents at their current version, filtered, oldest first."""
    q = select(ConsentRecord, ConsentVersion).join(
        ConsentVersion,
        (ConsentVersion.consent_id == ConsentRecord.id)
        & (ConsentVersion.version == ConsentRecord.current_version),
    )
    if kind is not None:
        q = q.where(ConsentRecord.kind == kind)
    if subject is not None:
        q = q.where(ConsentRecord.subject == subject)
    if actor is not None:
        q = q.where(ConsentRecord.actor == actor)
    if status is not None:
        q = q.where(ConsentRecord.status == status)
    q = q.order_by(ConsentRecord.created_at, ConsentRecord.id)
    return [ConsentView(r, v) for r, v in s.execute(q)]


def grant_document(view: ConsentView, now: datetime | None = None) -> dict[str, object]:
    """The grant API's JSON for an app grant (see API.md)."""
    v = view.version
    end = as_utc(v.period_end)
    return {
        "id": view.id,
        "status": view.state(now),
        "subject": view.record.subject,
        "client_id": view.record.actor,
        "client_name": v.actor_name,
        "scopes": list(v.scopes),
        "categories": list(v.categories),
        "purpose": v.purpose,
        "created_at": iso(as_utc(view.record.created_at)),
        "expires_at": iso(end),
        "revoked_at": iso(as_utc(v.recorded_at)) if v.status != ACTIVE else None,
        "version": v.version,
    }


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def parse_time(value: object, field: str) -> datetime | None:
    """An RFC 3339 date-time, or epoch seconds, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConsentError(f"{field} must be a date-time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConsentError(f"{field} must be an RFC 3339 date-time") from None
        if parsed.tzinfo is None:
            raise ConsentError(f"{field} needs a time zone")
        return parsed.astimezone(UTC)
    raise ConsentError(f"{field} must be a date-time")
