"""Subordinates and trust marks in the authority's database."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from federation.models import IssuedTrustMark, Subordinate
from federation.policy import check_operators


def add(
    s: Session,
    entity_id: str,
    jwks: dict[str, Any],
    *,
    entity_types: list[str] | None = None,
    intermediate: bool = False,
    metadata_policy: dict[str, Any] | None = None,
    constraints: dict[str, Any] | None = None,
) -> Subordinate:
    """Vouch for `entity_id` with these keys (again, if it was removed before)."""
    if not isinstance(jwks, dict) or not jwks.get("keys"):
        raise ValueError("jwks must be a JWK Set with at least one key")
    if any("d" in k for k in jwks["keys"]):
        raise ValueError("jwks holds a private key; register the public keys only")
    for etype, params in (metadata_policy or {}).items():
        for param, ops in params.items():
            check_operators(ops, f"{etype}.{param}")
    row = s.get(Subordinate, entity_id)
    if row is None:
        row = Subordinate(entity_id=entity_id)
        s.add(row)
    row.jwks = jwks
    row.entity_types = list(entity_types or [])
    row.intermediate = intermediate
    row.metadata_policy = metadata_policy
    row.constraints = constraints
    row.added_at = datetime.now(UTC)
    row.removed_at = None
    return row


def remove(s: Session, entity_id: str) -> bool:
    """Stop vouching at once: the fetch endpoint answers not_found from now on."""
    row = s.get(Subordinate, entity_id)
    if row is None or row.removed_at is not None:
        return False
    row.removed_at = datetime.now(UTC)
    return True


def active(s: Session, entity_id: str) -> Subordinate | None:
    row = s.get(Subordinate, entity_id)
    return row if row is not None and row.removed_at is None else None


def listing(
    s: Session, *, entity_type: str | None = None, intermediate: bool | None = None
) -> list[str]:
    rows = s.scalars(
        select(Subordinate).where(Subordinate.removed_at.is_(None)).order_by(Subordinate.entity_id)
    ).all()
    return [
        r.entity_id
        for r in rows
        if (entity_type is None or entity_type in r.entity_types)
        and (intermediate is None or r.intermediate == intermediate)
    ]


def record_mark(s: Session, mark_type: str, sub: str, lifetime_s: int) -> IssuedTrustMark:
    now = datetime.now(UTC).replace(microsecond=0)
    row = IssuedTrustMark(
        jti=secrets.token_urlsafe(16),
        trust_mark_type=mark_type,
        sub=sub,
        issued_at=now,
        expires_at=now + timedelta(seconds=lifetime_s),
    )
    s.add(row)
    return row


def revoke_marks(s: Session, sub: str, mark_type: str) -> int:
    rows = s.scalars(
        select(IssuedTrustMark).where(
            IssuedTrustMark.sub == sub,
            IssuedTrustMark.trust_mark_type == mark_type,
            IssuedTrustMark.revoked_at.is_(None),
        )
    ).all()
    for row in rows:
        row.revoked_at = datetime.now(UTC)
    return len(rows)


def find_mark(s: Session, sub: str, mark_type: str, iat: int) -> IssuedTrustMark | None:
    """The record of a presented mark, by subject, type and issue time."""
    rows = s.scalars(
        select(IssuedTrustMark).where(
            IssuedTrustMark.sub == sub, IssuedTrustMark.trust_mark_type == mark_type
        )
    ).all()
    for row in rows:
        issued = row.issued_at if row.issued_at.tzinfo else row.issued_at.replace(tzinfo=UTC)
        if int(issued.timestamp()) == iat:
            return row
    return None


def live_marks_issued_before(s: Session, since: datetime) -> int:
    """Trust marks issued before `since` that are neither expired nor revoked."""
    now = datetime.now(UTC)
    rows = s.scalars(select(IssuedTrustMark).where(IssuedTrustMark.revoked_at.is_(None))).all()
    return sum(1 for r in rows if _aware(r.issued_at) < since and _aware(r.expires_at) > now)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
