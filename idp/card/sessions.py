"""Card sessions at the IdP: the login page opens one, the card reader signs its challenge, the
IdP verifies the card and maps it to a person, and the login page takes the result once.

    create_card_session()  →  GET /card/sessions/<id|code>  →  POST …/response
        → idp.card.response.handle_response(): claim (single use) → verify → map → record
    take_verified()  (single use)

Signed bytes: UTF-8 of "phr-card-auth-v1\\n{origin}\\n{session_id}\\n{challenge}", origin being
the IdP's issuer, so a signature for one IdP or one session is worthless for any other.

How a verified certificate maps to a person (keyed hash of its fingerprint, never its serial
number; renewal links; enrollment) is idp.card.mapping; the services and the sealed attributes
are idp.card.services.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import segno
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.card.models import CardAudit, CardSession
from idp.orm import rowcount
from idp.rows import insert_row
from phr_core import metrics

log = logging.getLogger(__name__)

SESSION_TTL = timedelta(minutes=5)
TAKE_WITHIN = timedelta(minutes=5)  # a verified session must be taken this soon after
ACR_CARD = "urn:phr:acr:card"
AMR_CARD = ("sc", "pin", "hwk")  # RFC 8176: smart card, PIN, hardware-secured key
SHORT_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
SHORT_CODE_LENGTH = 8


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they are UTC.
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CardSignIn:
    """What a verified card session yields to the login page (once)."""

    person_id: str
    session_id: str
    auth_time: datetime
    enrolled: bool  # this sign-in created the person
    revocation_method: str | None = None  # "ocsp" or "crl": how the revocation was checked
    acr: str = ACR_CARD
    amr: list[str] = field(default_factory=lambda: list(AMR_CARD))


# --- opening and finding sessions -------------------------------------------------------------


def create_card_session(db_session: Session, purpose: str = "login") -> CardSession:
    """A new pending card session (random challenge, 5 minutes, single use) for the login page
    to show as a QR code (`session_qr_svg`) and a short code. The caller commits, and keeps the
    session id in the browser's own session so that only that browser can `take_verified` it."""
    now = _now()
    code = "".join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(SHORT_CODE_LENGTH))
    values: dict[str, Any] = dict(
        id=secrets.token_urlsafe(32), short_code=code, purpose=purpose[:32],
        challenge=secrets.token_urlsafe(32), status="pending", enrolled=False, created_at=now,
        expires_at=now + SESSION_TTL,
    )  # fmt: skip
    # Written with a plain INSERT (idp.rows: every view of the sign-in page makes one); the
    # object handed back carries the same values and is not attached to the session.
    insert_row(db_session, CardSession, **values)
    return CardSession(**values)


def normalize_short_code(text: str) -> str | None:
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) == SHORT_CODE_LENGTH and all(c in SHORT_CODE_ALPHABET for c in code):
        return code
    return None


def find_session(db_session: Session, ref: str) -> CardSession | None:
    """A session by its id or its short code (as typed: any case, with or without a dash)."""
    code = normalize_short_code(ref)
    if code is not None:
        found = db_session.scalar(select(CardSession).where(CardSession.short_code == code))
        if found is not None:
            return found
    if len(ref) > 64:
        return None
    return db_session.get(CardSession, ref)


def display_code(session: CardSession) -> str:
    """The short code as shown to people: ABCD-EFGH."""
    return f"{session.short_code[:4]}-{session.short_code[4:]}"


def session_url(issuer: str, session: CardSession) -> str:
    """What the QR code holds: the session's public URL at this IdP."""
    return f"{issuer.rstrip('/')}/card/sessions/{session.id}"


def session_qr_svg(issuer: str, session: CardSession) -> str:
    """The session URL as an inline SVG QR code (no external requests from the login page)."""
    return qr_svg(session_url(issuer, session))


def qr_svg(text: str) -> str:
    """`text` as an SVG QR code (also the counter's enrollment-code link, idp/passkey)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(
        out, kind="svg", scale=4, border=2, xmldecl=False, svgns=True, title="QR"
    )
    return out.getvalue().decode("utf-8")


def take_verified(db_session: Session, session_id: str) -> CardSignIn | None:
    """The verified result of a card session, once: a second call, a failed, pending or stale
    session gives None. The caller commits."""
    now = _now()
    result = db_session.execute(
        update(CardSession)
        .where(
            CardSession.id == session_id,
            CardSession.status == "verified",
            CardSession.verified_at >= now - TAKE_WITHIN,
        )
        .values(status="consumed", consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return None
    session = db_session.get(CardSession, session_id)
    if session is None or session.person_id is None:
        return None
    db_session.refresh(session)
    return CardSignIn(
        person_id=session.person_id,
        session_id=session.id,
        auth_time=_aware(session.verified_at or now),
        enrolled=session.enrolled,
        revocation_method=session.revocation_method,
    )


def _audit(
    db_session: Session,
    event: str,
    outcome: str,
    code: str | None,
    session_id: str | None,
    person_id: str | None = None,
    revocation_method: str | None = None,
) -> None:
    db_session.add(
        CardAudit(
            at=_now(),
            event=event,
            outcome=outcome,
            code=code,
            session_id=session_id,
            person_id=person_id if outcome == "success" else None,
            revocation_method=revocation_method,
        )
    )
    log.info("card %s %s%s", event, outcome, f" ({code})" if code else "")
    metrics.CARD_VERIFICATIONS.labels(event, code or "ok").inc()
