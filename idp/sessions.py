"""The browser's sign-in at the IdP: a random handle in the signed Flask session cookie, its
hash in the database (so a database leak yields no usable session)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Protocol, cast

from flask import session
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.context import LOGIN_SESSION_TTL
from idp.models import LoginSession, Person
from idp.rows import insert_row, row_by_key
from idp.tokens import aware, now_utc, sha256_hex
from phr_core import csrf


class SignIn(Protocol):
    """The browser's sign-in as read (idp.rows: the row's columns, read-only)."""

    @property
    def id_hash(self) -> str: ...
    @property
    def sid(self) -> str: ...
    @property
    def person_id(self) -> str: ...
    @property
    def auth_time(self) -> datetime: ...
    @property
    def acr(self) -> str: ...
    @property
    def amr(self) -> list[str]: ...


def current(s: Session) -> SignIn | None:
    handle = session.get("login")
    if not handle:
        return None
    row = row_by_key(s, LoginSession, sha256_hex(handle))
    if row is None or row.ended_at is not None or aware(row.expires_at) < now_utc():
        return None
    return cast(SignIn, row)


def start(s: Session, person_id: str, acr: str, amr: list[str]) -> None:
    """Sign the browser in as `person_id` (replacing any earlier sign-in)."""
    end(s)
    if s.get(Person, person_id) is None:
        raise ValueError("unknown person")
    handle = secrets.token_urlsafe(32)
    now = now_utc()
    insert_row(
        s, LoginSession, id_hash=sha256_hex(handle), sid=secrets.token_urlsafe(32),
        person_id=person_id, auth_time=now, acr=acr, amr=amr, expires_at=now + LOGIN_SESSION_TTL,
    )  # fmt: skip
    session.clear()
    session["login"] = handle


def end(s: Session) -> SignIn | None:
    row = current(s)
    if row is not None:
        s.execute(
            update(LoginSession)
            .where(LoginSession.id_hash == row.id_hash)
            .values(ended_at=now_utc())
            .execution_options(synchronize_session=False)
        )
    session.pop("login", None)
    return row


# CSRF: the kernel's one implementation (phr_core/csrf.py), under the names the IdP's pages use.
csrf_token = csrf.token
check_csrf = csrf.check
