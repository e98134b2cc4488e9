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
for one round trip. The batch closes only when its commit gets its turn (on SQLite, the file
lock below): what arrives while it waits for another process's commit goes in with it.

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
The audit connection does not checkpoint: SQLite's automatic checkpoint (every 1,000 WAL
pages, some 40 one-event commits) copies the WAL into the database and fsyncs both inside
whichever commit crosses the mark, about 10 ms on a busy disk while the other processes wait
for the lock (bench/fhir_api.md). A thread of each process does it instead (`_Checkpointer`),
after every CHECKPOINT_EVERY commits or a second after the last; a commit is as durable
without it (it is in the WAL), and writes other than the audit's keep the automatic one.

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
from phr_core.db import Database, make_engine
from phr_server import audit
from phr_server.models import utcnow
from phr_server.repository import Repository

CONNECT_TIMEOUT_S = 5  # a database that does not answer fails the batch (503), not hangs it
STATEMENT_TIMEOUT_MS = 10_000
# SQLite: a checkpoint after this many audit commits of a process, or CHECKPOINT_IDLE_S after
# the last. A one-event commit writes some 25 WAL pages: with two processes, about as often as
# SQLite's own mark of 1,000 pages (every checkpoint costs two fsyncs, off the request path).
CHECKPOINT_EVERY = 64
CHECKPOINT_IDLE_S = 1.0
RESTART_FRAMES = 16384  # 64 MiB of 4 KiB pages: then a checkpoint in the commits' turn

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
        self.checkpointer = _Checkpointer(self.engine, self.lock_path) if self.lock_path else None
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
        """Events no commit has taken yet: those of a commit that waits for its turn, and
        those waiting for the commit that runs now to finish (0 when none runs or waits)."""
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
            if lead:  # no commit runs: this thread commits the batch
                self._committing = True
        if lead:
            try:
                with self._turn():
                    with self._cond:  # closed once its turn came: later events queue anew
                        self._open = _Batch()
                        metrics.AUDIT_BACKLOG.set(0)
                    self._store(batch.events)
            except BaseException as exc:  # the waiters are told below; the type only is logged
                log.error("storing %d AuditEvents failed (%s)", len(batch.events), _kind(exc))
                batch.error = exc
                if not isinstance(exc, Exception):
                    raise
            finally:
                with self._cond:
                    if self._open is batch:  # its turn never came (no lock): closed all the same
                        self._open = _Batch()
                    batch.done = True
                    self._committing = False
                    self._cond.notify_all()
        if batch.error is not None:
            raise AuditUnavailable("the access log cannot be written just now; try again")

    def _store(self, events: list[tuple[dict[str, Any], datetime]]) -> None:
        """Commit `events` (the caller has its turn)."""
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
        if self.checkpointer is not None:
            self.checkpointer.committed()

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
        _release(self._conn, self._lock_fd)
        self._conn, self._lock_fd = None, None
        if self.checkpointer is not None:
            self.checkpointer.close()
        if self.engine is not self.db.engine:
            self.engine.dispose()


def _audit_engine(db: Database) -> Engine:
    """On PostgreSQL an engine of its own: one connection per process suffices (one commit at
    a time), autocommit (the batch is one statement: one round trip), synchronous commit on,
    and bounded waits. A SQLite file: one of its own too, whose connections never checkpoint
    (the checkpointer thread does); in memory, the service's."""
    if db.engine.dialect.name != "postgresql":
        if _lock_path(db) is None:
            return db.engine
        engine = make_engine(db.url)  # the service's pragmas (WAL, synchronous=NORMAL)
        event.listen(engine, "connect", _no_autocheckpoint)
        return engine
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


def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


class _Checkpointer:
    """SQLite: copies the WAL back into the database from a thread of its own, so that no
    read's commit waits for a checkpoint's fsyncs (module docstring).

    PASSIVE: it blocks no reader and no writer, and commits go on meanwhile. That has a
    price: SQLite starts the WAL file over only when a write begins with all of it copied,
    which commits arriving during every checkpoint prevent, so the file would grow for as long
    as the load lasts. Once it holds RESTART_FRAMES, the checkpoint runs again in the audit
    commits' turn (the lock file, opened on its own so that it excludes this process's commits
    too): with no audit commit in between it copies the rest, and the next commit starts the
    file over. That pass is short (most was copied already) and rare."""

    def __init__(self, engine: Engine, lock_path: str) -> None:
        self.engine, self.lock_path = engine, lock_path
        self.checkpoints = 0  # checkpoints run (tests)
        self.restarts = 0  # of them, in the commits' turn
        self._pending = 0  # commits since the last one (counted by the one committing thread)
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._conn: PoolProxiedConnection | None = None  # these two used by the thread only
        self._lock_fd: int | None = None

    def committed(self) -> None:
        self._pending += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
            self._thread.start()
        if self._pending >= CHECKPOINT_EVERY:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(CHECKPOINT_IDLE_S)
            self._wake.clear()
            if self._stop or not self._pending:
                continue
            self._pending = 0
            try:
                if self._checkpoint() >= RESTART_FRAMES:
                    if self._lock_fd is None:
                        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CLOEXEC)
                    with _locked(self._lock_fd):
                        self._checkpoint()
                    self.restarts += 1
            except Exception as exc:  # the next commits wake it again
                log.warning("checkpoint of the audit WAL failed (%s)", _kind(exc))
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.invalidate()

    def _checkpoint(self) -> int:
        """One PASSIVE checkpoint; the frames the WAL holds."""
        if self._conn is None:
            self._conn = self.engine.raw_connection()
        cur = self._conn.cursor()
        try:
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
            row = cur.fetchone()  # (busy, frames in the WAL, frames copied)
        finally:
            cur.close()
        self.checkpoints += 1
        return int(row[1]) if row else 0

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        _release(self._conn, self._lock_fd)
        self._conn, self._lock_fd = None, None

    def after_fork(self) -> None:
        """In a forked child: no thread (it stayed in the parent), the parent's connection and
        lock file kept, not closed; a new thread starts with the child's first commit."""
        _INHERITED.extend(x for x in (self._conn, self._lock_fd) if x is not None)
        self._conn, self._lock_fd = None, None
        self._thread, self._pending, self._stop = None, 0, False
        self._wake = threading.Event()


def _lock_path(db: Database) -> str | None:
    url = make_url(db.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return f"{url.database}-audit.lock"


def _release(conn: PoolProxiedConnection | None, fd: int | None) -> None:
    """Give a held connection back to its pool and close a lock file."""
    if conn is not None:
        conn.close()
    if fd is not None:
        os.close(fd)


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
        if batch.checkpointer is not None:
            batch.checkpointer.after_fork()
        if batch.engine is not batch.db.engine:
            batch.engine.dispose(close=False)  # the parent's connections stay the parent's
