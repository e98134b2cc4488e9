"""Erasing a person at the IdP when they delete their account (docs/retention.md).

Everything that is theirs goes: the Person row, its card bindings (so the same card later
enrols as a new person with a new `sub` everywhere), the sealed card attributes and the staff
lookup index, passkeys and enrollment codes, card sessions, sign-in sessions, grants,
authorization codes, refresh and access tokens, and the failure counters kept under their id.
The two audit trails of sign-in attempts (idp_card_audit, idp_passkey_audit) stay, since they
record attacks on the sign-in, not the person, but lose the internal id, which would now name
nobody: what is left says when and with what outcome, never whose.

Before the rows go, each of the person's sign-ins is ended as RP-initiated logout ends one
(idp.endpoints.logout.end_session): every app that got tokens in it receives its back-channel
logout token.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from idp.card.models import CardAttributes, CardAudit, CardBinding, CardSession, PersonLookup
from idp.clients import ClientView
from idp.models import (
    Attempt,
    AuthorizationCode,
    Grant,
    IssuedAccessToken,
    LoginSession,
    Person,
    RefreshToken,
)
from idp.orm import rowcount
from idp.passkey.models import EnrollmentCode, Passkey, PasskeyAudit
from idp.subjects import PairwiseSubjects
from idp.tokens import now_utc

# Rows deleted, table by table, children before the Person they point to.
OWNED = (
    AuthorizationCode,
    RefreshToken,
    IssuedAccessToken,
    LoginSession,
    Grant,
    CardSession,
    CardBinding,
    CardAttributes,
    PersonLookup,
    EnrollmentCode,
    Passkey,
)
UNLINKED = (CardAudit, PasskeyAudit)  # kept, person_id set to NULL


def erase_person(s: Session, person_id: str) -> dict[str, int]:
    """Delete the person and everything keyed by them; returns rows per table (zero counts
    when the person is already gone, so a retry is harmless)."""
    counts: dict[str, int] = {}
    for model in OWNED:
        column = model.__table__.c.person_id
        counts[model.__tablename__] = rowcount(s.execute(delete(model).where(column == person_id)))
    counts["idp_attempt"] = rowcount(
        s.execute(delete(Attempt).where(Attempt.key.like(f"%:{person_id}")))
    )
    for audit in UNLINKED:
        column = audit.__table__.c.person_id
        stmt = update(audit).where(column == person_id).values(person_id=None)
        counts[audit.__tablename__ + " (unlinked)"] = rowcount(s.execute(stmt))
    counts["idp_person"] = rowcount(s.execute(delete(Person).where(Person.id == person_id)))
    return counts


def signed_in_person(
    s: Session, subjects: PairwiseSubjects, client: ClientView, sub: str, sid: str
) -> str | None:
    """The person an ID token hint names, while the sign-in it came from still lives: `sid`
    names a login session that has neither ended nor expired, or a live (unused, unrevoked,
    unexpired) refresh token of this client, and `sub` is that person's subject for the
    client. None otherwise: an ended sign-in's leftover ID token names nobody to erase. One
    subject computed, never a scan over all persons."""
    now = now_utc()
    candidates = s.scalars(
        select(LoginSession.person_id)
        .where(
            LoginSession.sid == sid,
            LoginSession.ended_at.is_(None),
            LoginSession.expires_at > now,
        )
        .union(
            select(RefreshToken.person_id).where(
                RefreshToken.sid == sid,
                RefreshToken.client_id == client.client_id,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > now,
            )
        )
    ).all()
    for person_id in candidates:  # one person per sid: at most a row or two
        if subjects.subject(s, client.sector, person_id) == sub:
            return person_id
    return None


def sessions_of(s: Session, person_id: str) -> list[LoginSession]:
    """The person's sign-ins that have not ended (to end them, with their back-channel
    logout, before erasing)."""
    return list(
        s.scalars(
            select(LoginSession).where(
                LoginSession.person_id == person_id, LoginSession.ended_at.is_(None)
            )
        )
    )
