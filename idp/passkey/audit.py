"""The phone path's audit trail (table idp_passkey_audit) and its log lines. Records say who
(staff id; a person's internal id only on success), what, when and the outcome, never a
name, a code, a password or a key; log lines carry even less (no ids of people)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from idp.passkey.models import PasskeyAudit
from idp.tokens import now_utc

log = logging.getLogger("idp.passkey")


def audit(
    s: Session,
    event: str,
    outcome: str,
    *,
    code: str | None = None,
    staff_id: int | None = None,
    person_id: str | None = None,
    ref: str | None = None,
) -> None:
    s.add(
        PasskeyAudit(
            at=now_utc(),
            actor="staff" if staff_id is not None else "person",
            staff_id=staff_id,
            event=event,
            outcome=outcome,
            code=code,
            person_id=person_id if outcome == "success" else None,
            ref=ref,
        )
    )
    who = f" staff={staff_id}" if staff_id is not None else ""
    log.info("passkey %s %s%s%s", event, outcome, f" ({code})" if code else "", who)
