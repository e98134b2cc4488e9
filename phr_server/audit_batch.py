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

The commit runs on one connection per process, held open and used through the database
driver directly (psycopg, sqlite3): SQLAlchemy's pool checkout, transaction and statement
handling cost more CPU than the insert (bench/fhir_api.md). A connection that failed is
dropped; the next commit opens a new one.

Durability: on PostgreSQL the batch is one prepared `INSERT … SELECT FROM json_to_recordset`
statement in autocommit, on a connection of its own with `synchronous_commit = on` (the
server's other connections commit reads without waiting for the WAL flush: app.py), so an
access whose response was sent survives a database crash too. On SQLite the commit survives
the crash of any server process (WAL, `synchronous=NORMAL`: phr_core.db), not a power cut;
the workers of one database take turns through an advisory file lock beside it
(`<database>-audit.lock`), so a commit waiting for another process's is woken by the kernel
the moment it ends instead of polling in SQLite's busy handler (which sleeps 1, 2, 5, 10 … ms).

If the commit fails (database down, timeout), every request of that batch answers 503
(`AuditUnavailable`) and releases nothing: no data leaves unaudited, and no event is kept for
later, because no response went with it. Writes are not batched: a connector's AuditEvent
commits in the write's own transaction (api._write_audit).

Reading the trail needs no waiting: every access whose response was sent is committed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from phr_core import metrics
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
        self._conn: PoolProxiedConnection | None = None  # used by the committing thread only
        self.lock_path = _lock_path(db)  # SQLite: the file the processes commit in turn under
        self._lock_fd: int | None = None
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
            metrics.AUDIT_BACKLOG.set(len(self._open.events))
            while not batch.done and self._committing:
                self._cond.wait()
            lead = not batch.done
            if lead:  # no commit runs: this thread commits the batch, later ones queue anew
                self._committing = True
                self._open = _Batch()
                metrics.AUDIT_BACKLOG.set(0)
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
        with self._turn():
            if not self._key_ready:  # the first time: a Session, which can make the data key
                with Session(self.engine) as s, s.begin():
                    audit.store(s, self.repo, events)
                self._key_ready = True
            else:  # then the held connection, on the driver
                if self._conn is None:
                    self._conn = self._connect()
                try:
                    audit.store_on_driver(
                        self._conn.driver_connection, self.engine.dialect, self.repo, events
                    )
                except BaseException:
                    self._drop()  # it may be broken: the next commit opens a new one
                    raise
        self.commits += 1

    def _connect(self) -> PoolProxiedConnection:
        conn = self.engine.raw_connection()
        driver = conn.driver_connection
        if driver is None:  # a checked-out connection always has one
            raise RuntimeError("the audit connection is closed")
        if self.engine.dialect.name == "postgresql":
            # each statement commits by itself (the engine says so too; this path relies on it)
            driver.autocommit = True
        return conn

    def _turn(self) -> Any:
        """SQLite: the file lock the database's processes commit under, one at a time."""
        if self.lock_path is None:
            return nullcontext()
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return _locked(self._lock_fd)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()

    def close(self) -> None:
        """Release the audit connection (app teardown in tests); nothing is ever queued."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
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


def _lock_path(db: Database) -> str | None:
    url = make_url(db.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return f"{url.database}-audit.lock"


@contextmanager
def _locked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)  # waits in the kernel (without the GIL)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _kind(exc: BaseException) -> str:
    # The type only: a database error's message may quote the row (personal data).
    return type(exc).__name__


# The parent's connections, kept from being closed (or returned to a pool) by a forked child.
_INHERITED: list[Any] = []


def _after_fork(ref: weakref.ref[AuditBatch]) -> None:
    batch = ref()
    if batch is not None:
        batch._reset()
        if batch._conn is not None:  # the parent's connection stays the parent's
            _INHERITED.append(batch._conn)
            batch._conn = None
        if batch._lock_fd is not None:  # a lock of its own (flock locks follow the open file)
            _INHERITED.append(batch._lock_fd)
            batch._lock_fd = None
        if batch.engine is not batch.db.engine:
            batch.engine.dispose(close=False)  # the parent's connections stay the parent's
