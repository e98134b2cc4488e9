"""The AuditEvents of reads and searches, stored by group commit before the response leaves.

A request thread hands its events to `AuditBatch.commit` and waits until they are committed;
only then does the data go out. "Every read is audited" therefore survives a crash of the
server process (`kill -9` of a worker right after its responses): each response that left has
its AuditEvent in the database already.

Group commit: one commit runs at a time per process. A thread that arrives while none runs
commits its own events at once (no fixed delay); threads that arrive while one runs join the
next batch and wait for it, and the first of them to wake commits the whole batch in one
transaction for all of them. Under load a batch holds whatever arrived during the previous
commit, so batches grow with the load and one commit serves many reads; alone, a read pays
for one round trip.

Durability: on PostgreSQL the batch is one `INSERT … SELECT FROM unnest(…)` statement on a
connection of its own, committed with `synchronous_commit = on` (the server's other
connections commit reads without waiting for the WAL flush: app.py), so an access whose
response was sent survives a database crash too. On SQLite the commit survives the crash of
any server process (WAL, `synchronous=NORMAL`: phr_core.db), not a power cut.

If the commit fails (database down, timeout), every request of that batch answers 503
(`AuditUnavailable`) and releases nothing: no data leaves unaudited, and no event is kept for
later, because no response went with it. Writes are not batched: a connector's AuditEvent
commits in the write's own transaction (api._write_audit).

Reading the trail needs no waiting: every access whose response was sent is committed.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session

from phr_core.db import Database
from phr_server import audit
from phr_server.models import utcnow
from phr_server.repository import Repository

CONNECT_TIMEOUT_S = 5  # a database that does not answer fails the batch (503), not hangs it
STATEMENT_TIMEOUT_MS = 10_000

log = logging.getLogger(__name__)


class AuditUnavailable(Exception):
    """503: the audit trail cannot be written just now; nothing is served unaudited."""


class _Batch:
    """Events committed together, and the outcome every waiter reads."""

    __slots__ = ("done", "error", "events")

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, Any], datetime]] = []
        self.done = False
        self.error: BaseException | None = None


class AuditBatch:
    """One server process's group commit of AuditEvents."""

    def __init__(self, db: Database, repo: Repository) -> None:
        self.db, self.repo = db, repo
        self.engine = _audit_engine(db)
        self.commits = 0  # transactions committed (how far batching went: bench, tests)
        self._key_ready = False
        self._reset()
        ref = weakref.ref(self)
        # A forked child starts with fresh locks and no batch of the parent's.
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._open = _Batch()  # collecting events for the next commit
        self._committing = False

    @property
    def queued(self) -> int:
        """Events waiting for the commit that runs now to finish (0 when none runs)."""
        return len(self._open.events)

    def commit(self, events: list[dict[str, Any]]) -> None:
        """Store `events` (their `recorded` time is now) and return once they are committed;
        AuditUnavailable if the commit failed (then nothing of them is stored)."""
        if not events:
            return
        now = utcnow()
        with self._cond:
            batch = self._open
            batch.events.extend((e, now) for e in events)
            while not batch.done and self._committing:
                self._cond.wait()
            lead = not batch.done
            if lead:  # no commit runs: this thread commits the batch, later ones queue anew
                self._committing = True
                self._open = _Batch()
        if lead:
            try:
                self._store(batch.events)
            except BaseException as exc:  # the waiters are told below; the type only is logged
                log.error("storing %d AuditEvents failed (%s)", len(batch.events), _kind(exc))
                batch.error = exc
                if not isinstance(exc, Exception):
                    raise
            finally:
                with self._cond:
                    batch.done = True
                    self._committing = False
                    self._cond.notify_all()
        if batch.error is not None:
            raise AuditUnavailable("the access log cannot be written just now; try again")

    def _store(self, events: list[tuple[dict[str, Any], datetime]]) -> None:
        if not self._key_ready:  # the first time: a Session, which can make the data key
            with Session(self.engine) as s, s.begin():
                audit.store(s, self.repo, events)
            self._key_ready = True
        else:  # then a plain connection: a quarter less CPU per commit
            with self.engine.begin() as conn:
                audit.store(conn, self.repo, events)
        self.commits += 1

    def close(self) -> None:
        """Release the audit connection (app teardown in tests); nothing is ever queued."""
        if self.engine is not self.db.engine:
            self.engine.dispose()


def _audit_engine(db: Database) -> Engine:
    """On PostgreSQL an engine of its own: one connection per process suffices (one commit at
    a time), autocommit (the batch is one statement: one round trip), synchronous commit on,
    and bounded waits. SQLite uses the service's engine (its writes serialise anyway)."""
    if db.engine.dialect.name != "postgresql":
        return db.engine
    engine = create_engine(
        db.url,
        pool_size=1,
        max_overflow=1,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )
    event.listen(engine, "connect", _durable_commit)
    return engine


def _durable_commit(dbapi_conn: Any, _record: Any) -> None:
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    dbapi_conn.execute("SET synchronous_commit = on")
    dbapi_conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    dbapi_conn.autocommit = autocommit


def _kind(exc: BaseException) -> str:
    # The type only: a database error's message may quote the row (personal data).
    return type(exc).__name__


def _after_fork(ref: weakref.ref[AuditBatch]) -> None:
    batch = ref()
    if batch is not None:
        batch._reset()
        if batch.engine is not batch.db.engine:
            batch.engine.dispose(close=False)  # the parent's connections stay the parent's
