"""The browser's sign-in at the IdP: a random handle in the signed Flask session cookie, its
hash in the database (so a database leak yields no usable session)."""

from __future__ import annotations

import secrets

from flask import session
from sqlalchemy.orm import Session

from idp.context import LOGIN_SESSION_TTL
from idp.models import LoginSession, Person
from idp.tokens import aware, now_utc, sha256_hex
from phr_core import csrf


def current(s: Session) -> LoginSession | None:
    handle = session.get("login")
    if not handle:
        return None
    row = s.get(LoginSession, sha256_hex(handle))
    if row is None or row.ended_at is not None or aware(row.expires_at) < now_utc():
        return None
    return row


def start(s: Session, person_id: str, acr: str, amr: list[str]) -> LoginSession:
    """Sign the browser in as `person_id` (replacing any earlier sign-in)."""
    end(s)
    if s.get(Person, person_id) is None:
        raise ValueError("unknown person")
    handle = secrets.token_urlsafe(32)
    now = now_utc()
    row = LoginSession(
        id_hash=sha256_hex(handle),
        sid=secrets.token_urlsafe(32),
        person_id=person_id,
        auth_time=now,
        acr=acr,
        amr=amr,
        expires_at=now + LOGIN_SESSION_TTL,
    )
    s.add(row)
    session.clear()
    session["login"] = handle
    return row


def end(s: Session) -> LoginSession | None:
    row = current(s)
    if row is not None:
        row.ended_at = now_utc()
    session.pop("login", None)
    return row


# CSRF: the kernel's one implementation (phr_core/csrf.py), under the names the IdP's pages use.
csrf_token = csrf.token
check_csrf = csrf.check
