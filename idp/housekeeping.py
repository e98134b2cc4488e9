"""Deleting what the IdP no longer needs: expired codes, tokens, sessions, challenges and
replay records. Kept rows past their use are data we would have to protect for nothing.

Each kind is deleted a grace period after it stopped mattering (a used authorization code or
refresh token is kept until it expires, so a replay is still recognised and revokes its family;
after that a replay is refused as expired anyway). People, clients, keys and the audit tables
are never touched here.

Every IdP worker calls `maybe_purge` after a request; at most once per CHECK_EVERY_S it asks the
database whether the purge is due (`idp_housekeeping`, a compare-and-set), so that across all
workers and replicas it runs once per PURGE_EVERY_S. Operators may also run `phr idp purge`
from a scheduler.

`purge_grants` (run by `phr purge`, daily) deletes the IdP's copy of grants that ended
GRANT_KEEP ago and that no token or code still names; the consent trail itself (every version
of every consent) is the consent service's and stays.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.card.models import CardSession
from idp.models import (
    Attempt,
    AuthorizationCode,
    AuthRequest,
    DpopJti,
    Grant,
    HousekeepingRun,
    InitialAccessToken,
    IssuedAccessToken,
    LoginSession,
    RefreshToken,
)
from idp.orm import rowcount
from idp.passkey.models import EnrollmentCode, PasskeyChallenge, StaffSession
from idp.tokens import now_utc
from phr_core.db import Database

log = logging.getLogger(__name__)

GRACE = timedelta(days=1)  # past expiry, kept this long for support questions, then gone
ATTEMPT_WINDOW_KEEP = timedelta(days=1)  # failure counters older than any limit's window
PURGE_EVERY_S = 3600.0
CHECK_EVERY_S = 300.0  # how often a worker asks whether the shared purge is due
JOB = "purge"
# An ended grant (revoked or expired) stays this long for support questions ("why can my app no
# longer read?"); the consent service keeps the consent trail itself.
GRANT_KEEP = timedelta(days=90)


def purge(s: Session, now: datetime | None = None) -> dict[str, int]:
    """Delete expired rows; returns how many of each kind."""
    cutoff = (now or now_utc()) - GRACE
    targets = {
        "authorization codes": delete(AuthorizationCode).where(
            AuthorizationCode.expires_at < cutoff
        ),
        "refresh tokens": delete(RefreshToken).where(RefreshToken.expires_at < cutoff),
        "access tokens": delete(IssuedAccessToken).where(IssuedAccessToken.expires_at < cutoff),
        "authorization requests": delete(AuthRequest).where(AuthRequest.expires_at < cutoff),
        "login sessions": delete(LoginSession).where(
            or_(
                LoginSession.expires_at < cutoff,
                and_(LoginSession.ended_at.is_not(None), LoginSession.ended_at < cutoff),
            )
        ),
        "card sessions": delete(CardSession).where(CardSession.expires_at < cutoff),
        "DPoP and assertion ids": delete(DpopJti).where(DpopJti.expires_at < cutoff),
        "registration tokens": delete(InitialAccessToken).where(
            or_(InitialAccessToken.expires_at < cutoff, InitialAccessToken.uses_left <= 0)
        ),
        "passkey challenges": delete(PasskeyChallenge).where(PasskeyChallenge.expires_at < cutoff),
        "enrollment codes": delete(EnrollmentCode).where(EnrollmentCode.expires_at < cutoff),
        "staff sessions": delete(StaffSession).where(
            or_(
                StaffSession.expires_at < cutoff,
                and_(StaffSession.ended_at.is_not(None), StaffSession.ended_at < cutoff),
            )
        ),
        "attempt counters": delete(Attempt).where(
            Attempt.window_start < (now or now_utc()) - ATTEMPT_WINDOW_KEEP
        ),
    }
    return {kind: rowcount(s.execute(stmt)) for kind, stmt in targets.items()}


def claim(db: Database, job: str, every: timedelta, now: datetime | None = None) -> bool:
    """Whether this caller runs `job` now: True for exactly one of any number of concurrent
    callers (workers, replicas) once it is due, which moves it `every` ahead. An UPDATE with
    the due time in its WHERE is atomic on PostgreSQL (row lock, re-checked) and SQLite."""
    now = now or now_utc()
    try:
        with db.session() as s:
            due = (HousekeepingRun.name == job) & (HousekeepingRun.next_run_at <= now)
            moved = update(HousekeepingRun).where(due).values(next_run_at=now + every)
            if rowcount(s.execute(moved)) == 1:
                return True
            if s.get(HousekeepingRun, job) is not None:
                return False  # not due yet (another caller ran it)
            s.add(HousekeepingRun(name=job, next_run_at=now + every))  # the first run ever
    except IntegrityError:
        return False  # another caller's first run won
    return True


def purge_grants(s: Session, now: datetime | None = None) -> int:
    """Delete grants revoked or expired more than GRANT_KEEP ago that no refresh token or
    authorization code names any more (a token whose grant is gone is refused anyway: the token
    endpoint treats a missing grant as withdrawn). Returns how many."""
    cutoff = (now or now_utc()) - GRANT_KEEP
    still_named = or_(
        exists().where(RefreshToken.grant_id == Grant.id),
        exists().where(AuthorizationCode.grant_id == Grant.id),
    )
    ended = or_(
        and_(Grant.revoked_at.is_not(None), Grant.revoked_at < cutoff),
        and_(Grant.expires_at.is_not(None), Grant.expires_at < cutoff),
    )
    return rowcount(
        s.execute(
            delete(Grant).where(ended, ~still_named).execution_options(synchronize_session=False)
        )
    )


class Purger:
    """Asks at most once per `check_s` in this process whether the purge is due for the whole
    service (`claim`), and runs it when so; never blocks a request for another worker's check
    (a failed run is logged and tried again next period)."""

    def __init__(
        self, db: Database, every_s: float = PURGE_EVERY_S, check_s: float = CHECK_EVERY_S
    ) -> None:
        self.db = db
        self.every_s = every_s
        self.check_s = min(check_s, every_s)
        self._next = time.monotonic() + every_s * 0.1  # not all workers at start-up
        self._lock = threading.Lock()

    def maybe_purge(self) -> dict[str, int] | None:
        now = time.monotonic()
        if now < self._next or not self._lock.acquire(blocking=False):
            return None
        try:
            self._next = now + self.check_s
            if not claim(self.db, JOB, timedelta(seconds=self.every_s)):
                return None
            with self.db.session() as s:
                counts = purge(s)
            if any(counts.values()):
                log.info(
                    "purged expired rows: %s",
                    ", ".join(f"{n} {k}" for k, n in counts.items() if n),
                )
            return counts
        except Exception:  # housekeeping must never fail a request
            log.exception("purging expired rows failed; trying again next period")
            return None
        finally:
            self._lock.release()
