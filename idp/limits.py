"""Attempt limits: after too many failures in a window, a key (a client at the token endpoint,
a person at sign-in) is refused until the window ends. Only failures are written, so the
normal path costs one primary-key read."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.models import Attempt
from idp.tokens import aware, now_utc
from phr_core.db import Database

TOKEN_ENDPOINT = ("token", 20, timedelta(minutes=1))  # per client
SIGN_IN = ("sign-in", 5, timedelta(minutes=15))  # per person


def blocked_for(s: Session, kind: tuple[str, int, timedelta], subject: str) -> int:
    """Seconds until `subject` may try again, 0 when it may now. Read in the caller's
    transaction: the normal path costs one primary-key lookup and no transaction of its own."""
    name, limit, window = kind
    row = s.get(Attempt, f"{name}:{subject}"[:160])
    if row is None:
        return 0
    ends = aware(row.window_start) + window
    if row.failures < limit or ends <= now_utc():
        return 0
    return max(1, int((ends - now_utc()).total_seconds()))


def record_failure(db: Database, kind: tuple[str, int, timedelta], subject: str) -> None:
    """Count one failure, in a transaction of its own: it must stick although the request fails."""
    name, _, window = kind
    key = f"{name}:{subject}"[:160]
    for _ in range(2):  # a concurrent first insert may win; then update
        try:
            with db.session() as s:
                row = s.get(Attempt, key, with_for_update=True)
                now = now_utc()
                if row is None:
                    s.add(Attempt(key=key, window_start=now, failures=1))
                elif aware(row.window_start) + window <= now:
                    row.window_start, row.failures = now, 1
                else:
                    row.failures += 1
            return
        except IntegrityError:
            continue
