"""Counter-staff accounts and their sign-in, separate from citizens' sessions.

Passwords: scrypt (N=2^14, r=8, p=1, 16-byte salt), compared in constant time; an unknown
login costs the same scrypt work as a known one. Five wrong passwords in a row lock the
account for 15 minutes (`phr idp staff unlock` ends it sooner). A staff sign-in is a random
handle in its own cookie (`phr_idp_staff`, path /staff, SameSite=Strict, HttpOnly) whose
SHA-256 is stored with the session's CSRF token; it lasts one counter shift (8 hours)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.passkey.audit import audit
from idp.passkey.errors import PasskeyError
from idp.passkey.models import Staff, StaffSession
from idp.tokens import aware, now_utc, sha256_hex
from phr_core.csrf import new_token as new_csrf_token

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_FAILED_LOGINS = 5
LOCK_FOR = timedelta(minutes=15)
STAFF_SESSION_TTL = timedelta(hours=8)
MIN_PASSWORD_LENGTH = 12
COOKIE = "phr_idp_staff"
COOKIE_PATH = "/staff"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# Verified against when the login is unknown, so both cases cost one scrypt.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def valid_login(login: str) -> bool:
    return 1 <= len(login) <= 64 and login.isascii() and login.isprintable() and " " not in login


def add_staff(s: Session, login: str, password: str) -> Staff:
    """A new staff account; ValueError with the reason for a bad login or a short password."""
    if not valid_login(login):
        raise ValueError("the login must be 1–64 printable ASCII characters without spaces")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if s.scalar(select(Staff).where(Staff.login == login)) is not None:
        raise ValueError(f"staff account {login!r} already exists")
    staff = Staff(login=login, password_hash=hash_password(password), failed_logins=0)
    s.add(staff)
    s.flush()
    return staff


@dataclass(frozen=True)
class StaffSignIn:
    staff_id: int
    login: str
    handle: str  # for the cookie; only its hash is stored
    csrf: str


def sign_in(s: Session, login: str, password: str) -> StaffSignIn:
    """Check a staff login and open a staff session; PasskeyError (audited) otherwise. The
    caller commits even on failure, so the failure count and the audit record are kept."""
    staff = s.scalar(select(Staff).where(Staff.login == login)) if valid_login(login) else None
    now = now_utc()
    if staff is None or staff.disabled:
        check_password(password, _DUMMY_HASH)
        audit(s, "staff_sign_in", "failure", code="bad_credentials")
        raise PasskeyError("bad_credentials")
    if staff.locked_until is not None and aware(staff.locked_until) > now:
        audit(s, "staff_sign_in", "failure", code="staff_locked", staff_id=staff.id)
        raise PasskeyError("staff_locked")
    if not check_password(password, staff.password_hash):
        staff.failed_logins += 1
        code = "bad_credentials"
        if staff.failed_logins >= MAX_FAILED_LOGINS:
            staff.locked_until, staff.failed_logins = now + LOCK_FOR, 0
            code = "staff_locked"
        audit(s, "staff_sign_in", "failure", code=code, staff_id=staff.id)
        raise PasskeyError(code)
    staff.failed_logins, staff.locked_until, staff.last_login_at = 0, None, now
    handle, csrf = secrets.token_urlsafe(32), new_csrf_token()
    s.add(
        StaffSession(
            id_hash=sha256_hex(handle),
            staff_id=staff.id,
            csrf=csrf,
            created_at=now,
            expires_at=now + STAFF_SESSION_TTL,
        )
    )
    audit(s, "staff_sign_in", "success", staff_id=staff.id)
    return StaffSignIn(staff.id, staff.login, handle, csrf)


@dataclass(frozen=True)
class CurrentStaff:
    staff_id: int
    login: str
    csrf: str
    session_hash: str


def current(s: Session, handle: str | None) -> CurrentStaff | None:
    """The signed-in staff member for a cookie value, or None (unknown, ended, expired, or the
    account disabled since)."""
    if not handle or len(handle) > 100:
        return None
    row = s.get(StaffSession, sha256_hex(handle))
    if row is None or row.ended_at is not None or aware(row.expires_at) <= now_utc():
        return None
    staff = s.get(Staff, row.staff_id)
    if staff is None or staff.disabled:
        return None
    return CurrentStaff(staff.id, staff.login, row.csrf, row.id_hash)


def sign_out(s: Session, who: CurrentStaff) -> None:
    row = s.get(StaffSession, who.session_hash)
    if row is not None and row.ended_at is None:
        row.ended_at = now_utc()
        audit(s, "staff_sign_out", "success", staff_id=who.staff_id)


def unlock(s: Session, login: str) -> bool:
    staff = s.scalar(select(Staff).where(Staff.login == login))
    if staff is None:
        return False
    staff.locked_until, staff.failed_logins = None, 0
    audit(s, "staff_unlock", "success", staff_id=staff.id)
    return True


def set_disabled(s: Session, login: str, disabled: bool) -> bool:
    """Disable (or enable) an account; a disabled account's open sessions stop working."""
    staff = s.scalar(select(Staff).where(Staff.login == login))
    if staff is None:
        return False
    staff.disabled = disabled
    audit(s, "staff_disable" if disabled else "staff_enable", "success", staff_id=staff.id)
    return True
