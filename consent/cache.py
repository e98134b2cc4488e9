"""The in-process cache the PHR server's questions are answered from ("is grant G active",
"which patients may subject S reach"), and how a change reaches every process promptly.

A hit costs a dictionary lookup and one `os.stat` (microseconds). Invalidation has three paths:

1. In the writing process, the session's after-commit hook evicts the changed keys at once.
2. On the same host (every gunicorn worker of one server), the hook then replaces a small stamp
   file in the var folder; every read compares the file's (inode, mtime) with the last one seen
   and, when it moved, reads the change log (`consent_change`) and evicts what it names. So a
   revocation in one worker is seen by the next request in any other: "at once".
3. Across hosts (no shared var folder), each process also reads the change log at most every
   `poll_interval` seconds (default 1 s): a revocation is seen within that.

The change log is written in the same transaction as the change, so nothing is evicted before
it is committed, and a loader that raced with an eviction does not store its stale answer.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy import delete, event, func, or_, select
from sqlalchemy.orm import Session

from consent.models import ChangeLog, utcnow
from phr_core import metrics
from phr_core.db import Database
from phr_core.singleflight import SingleFlight

T = TypeVar("T")

STAMP_FILE = "consent-cache.stamp"
CHANGE_LOG_KEEP = timedelta(hours=1)
OVERLAP = timedelta(seconds=10)  # re-read recent changes: sequence numbers may commit late


class ConsentCache:
    """Key → value with prompt cross-process invalidation (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        stamp_path: Path | None,
        *,
        poll_interval: float = 1.0,
        ttl: float = 300.0,
        max_entries: int = 100_000,
    ) -> None:
        self.db = db
        self.stamp_path = stamp_path
        self.poll_interval = poll_interval
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: dict[str, tuple[float, object]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._stamp = self._read_stamp()
        self._last_seq = 0
        self._started = False
        self._last_sync_wall = utcnow()
        self._next_poll = 0.0
        self._next_prune = 0.0
        self._flights: SingleFlight[object] = SingleFlight()
        self.syncs = 0  # how often the change log was read (for tests and the benchmark)

    # --- reading ---------------------------------------------------------------------------

    def get(self, key: str, loader: Callable[[], T]) -> T:
        """The cached value of `key`, loading (and storing) it on a miss. Concurrent misses of
        one key in this process run `loader` once (single flight): the others wait for it."""
        self._maybe_sync()
        hit = self._data.get(key)
        if hit is not None and hit[0] > time.monotonic():
            metrics.CONSENT_CACHE.labels("consent", "hit").inc()
            return cast(T, hit[1])  # what `loader` of this key stored
        metrics.CONSENT_CACHE.labels("consent", "miss").inc()
        # A caller never joins a load that started before the last eviction it could have
        # seen: that load may have read the state before a revocation.
        generation = self._generation
        loaded = self._flights.do(
            f"{generation}:{key}", lambda: self._load(key, loader, generation)
        )
        return cast(T, loaded)  # the flights hold every key's loads, so they are typed object

    def _load(self, key: str, loader: Callable[[], T], generation: int) -> T:
        now = time.monotonic()
        value = loader()
        with self._lock:
            # An eviction while loading (a change committed meanwhile) may make this answer
            # stale: return it to the callers that asked before, but do not keep it.
            if self._generation == generation:
                if len(self._data) >= self.max_entries:
                    self._data.clear()  # crude but bounded; the hot keys come back at once
                self._data[key] = (now + self.ttl, value)
        return value

    def _read_stamp(self) -> tuple[int, int] | None:
        if self.stamp_path is None:
            return None
        try:
            st = os.stat(self.stamp_path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def _maybe_sync(self) -> None:
        stamp = self._read_stamp()
        if stamp != self._stamp or time.monotonic() >= self._next_poll:
            self.sync(stamp)

    def sync(self, stamp: tuple[int, int] | None = None) -> None:
        """Read the change log since the last look and evict every key it names."""
        if not self._sync_lock.acquire(blocking=False):
            return  # another thread is doing it right now
        try:
            started = utcnow()
            with self.db.session() as s:
                if not self._started:
                    # First look: the cache is empty, so only remember where the log is.
                    self._last_seq = s.scalar(select(func.max(ChangeLog.seq))) or 0
                    rows: list[tuple[int, str]] = []
                else:
                    rows = list(
                        s.execute(
                            select(ChangeLog.seq, ChangeLog.key).where(
                                or_(
                                    ChangeLog.seq > self._last_seq,
                                    ChangeLog.changed_at >= self._last_sync_wall - OVERLAP,
                                )
                            )
                        )
                    )
                if time.monotonic() >= self._next_prune:
                    s.execute(
                        delete(ChangeLog).where(ChangeLog.changed_at < started - CHANGE_LOG_KEEP)
                    )
                    self._next_prune = time.monotonic() + 600
            if rows:
                self.evict(key for _, key in rows)
                self._last_seq = max(self._last_seq, *(seq for seq, _ in rows))
            self._last_sync_wall = started
            self._started = True
            self._stamp = stamp if stamp is not None else self._read_stamp()
            self._next_poll = time.monotonic() + self.poll_interval
            self.syncs += 1
        finally:
            self._sync_lock.release()

    # --- writing ---------------------------------------------------------------------------

    def evict(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._generation += 1
            for key in keys:
                self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._data.clear()

    def changed(self, keys: Iterable[str]) -> None:
        """Called after a commit in this process: evict here, then tell the other processes."""
        self.evict(keys)
        bump_stamp(self.stamp_path)


def bump_stamp(path: Path | None) -> None:
    """Replace the stamp file (a new inode), which every process on this host checks."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(str(time.time_ns()), encoding="ascii")
        os.replace(tmp, path)


def install(db: Database, stamp_path: Path | None, cache: ConsentCache | None = None) -> None:
    """Hook the database's sessions so that every commit that changed consent state evicts the
    keys here (when this process has a cache) and bumps the stamp for the others."""

    @event.listens_for(db.sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        keys = session.info.pop("consent_changed_keys", None)
        if not keys:
            return
        if cache is not None:
            cache.changed(keys)
        else:
            bump_stamp(stamp_path)

    @event.listens_for(db.sessions, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("consent_changed_keys", None)
