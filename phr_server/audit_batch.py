"""The AuditEvents of reads and searches, written in batches: one transaction per worker at
most every `delay` seconds (PHR_FHIR_AUDIT_FLUSH_MS, default FLUSH_S = 0.2 s, at most 1 s)
instead of one INSERT per request (which cost a fifth of a read's CPU). Each event is built
during its request, `recorded` then, and stored at most `delay` later.

What a crash can lose: a worker that stops in any orderly way (gunicorn's graceful stop on
SIGTERM or SIGQUIT, SIGABRT after a worker timeout, max-requests recycling, SIGINT) flushes
its queue before it exits (atexit). One killed with SIGKILL, or dying in native code, loses
the events of at most its last `delay` of reads. That is the window the server
already accepts for these rows with `synchronous_commit = off` (app.py), which on a
PostgreSQL crash may lose up to 3 × wal_writer_delay (0.6 s by default) of committed ones.
Writes are never batched: a connector's AuditEvent commits durably in the write's own
transaction (api._write_audit).

If the database refuses a flush, the events stay queued and are retried every RETRY_S; once
MAX_PENDING are waiting, requests get 503 (`AuditBacklog`) instead of unaudited data.

Reading the trail (an AuditEvent read, vread, history or search) first stores this worker's
queue and then waits out `delay` (`settle`), by which time every other worker has stored what
it held when the trail was asked for: the trail shows every access made before it, whichever
worker served it (the citizen portal's access history right after an app's read).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from datetime import datetime
from typing import Any

from phr_core.db import Database
from phr_server import audit
from phr_server.models import utcnow
from phr_server.repository import Repository

FLUSH_S = 0.2
SETTLE_MARGIN_S = 0.1  # for another worker's flush to commit once its timer fired
RETRY_S = 1.0
MAX_PENDING = 10_000

log = logging.getLogger(__name__)


class AuditBacklog(Exception):
    """503: the audit trail cannot be written just now; nothing is served unaudited."""


class AuditBatch:
    """One worker's queue of AuditEvents waiting to be stored."""

    def __init__(
        self,
        db: Database,
        repo: Repository,
        delay: float = FLUSH_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.db, self.repo = db, repo
        self.delay, self.max_pending = delay, max_pending
        self._pending: list[tuple[dict[str, Any], datetime]] = []
        self._lock = threading.Lock()  # guards _pending and _timer
        self._flushing = threading.Lock()  # one flush at a time, so events keep their order
        self._timer: threading.Timer | None = None
        self._closed = False
        ref = weakref.ref(self)
        atexit.register(_close, ref)
        # A forked child starts empty: the parent stores what it had queued.
        os.register_at_fork(after_in_child=lambda: _forget_timer(ref))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, events: list[dict[str, Any]]) -> None:
        """Queue `events` (their `recorded` time is now); stored within `delay` seconds, or
        at once with a delay of 0 (AuditBacklog if that fails: the events stay queued)."""
        now = utcnow()
        with self._lock:
            if len(self._pending) >= self.max_pending:
                raise AuditBacklog("the access log cannot be written just now; try again")
            self._pending.extend((e, now) for e in events)
            if self._timer is None and not self._closed:
                self._schedule(self.delay if self.delay > 0 else RETRY_S)
        if self.delay <= 0:
            try:
                self.flush()
            except Exception as exc:
                log.error("storing %d AuditEvents failed (%s); retrying", self.pending, _kind(exc))
                raise AuditBacklog("the access log cannot be written just now; try again") from None

    def flush(self) -> int:
        """Store everything queued now, in one transaction; the number of events stored.
        On failure the events go back to the head of the queue and the error is raised."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                with self.db.session() as s:
                    audit.store(s, self.repo, batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch
                raise
            return len(batch)

    def settle(self) -> None:
        """Before the trail is read: store this worker's queue now, then wait until the other
        workers' timers have stored what they held (raises if this worker's flush fails)."""
        self.flush()
        if self.delay > 0:
            time.sleep(self.delay + SETTLE_MARGIN_S)

    def close(self) -> None:
        """Flush and stop (worker exit, app teardown in tests); errors are logged."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        try:
            self.flush()
        except Exception as exc:
            log.error("%d AuditEvents could not be stored at exit (%s)", self.pending, _kind(exc))

    def _schedule(self, delay: float) -> None:  # with _lock held
        timer = threading.Timer(delay, self._tick)
        timer.daemon = True  # exit does not wait for it: atexit flushes instead
        self._timer = timer
        timer.start()

    def _tick(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.flush()
        except Exception as exc:
            log.error("storing %d AuditEvents failed (%s); retrying", self.pending, _kind(exc))
            with self._lock:
                if self._pending and self._timer is None and not self._closed:
                    self._schedule(RETRY_S)


def _kind(exc: BaseException) -> str:
    # The type only: a database error's message may quote the row (personal data).
    return type(exc).__name__


def _close(ref: weakref.ref[AuditBatch]) -> None:
    batch = ref()
    if batch is not None and not batch._closed:  # closed: its last flush was already tried
        batch.close()


def _forget_timer(ref: weakref.ref[AuditBatch]) -> None:
    batch = ref()
    if batch is not None:
        batch._lock = threading.Lock()
        batch._flushing = threading.Lock()
        batch._timer = None
        batch._pending = []  # the parent's to store, not a second copy
