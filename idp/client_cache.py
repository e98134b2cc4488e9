"""Client rows kept in process memory for a few seconds: every page and grant of a sign-in reads
the same client (about nine times per authorization code flow), and its metadata changes rarely.

Invalidation: a change committed by any session of this process (registration, RFC 7592
update or delete, federation re-registration, the CLI, a secret re-hash, the sector lock) drops
that client at once; a change made by another process — another worker, a replica, `phr idp`
run beside the server — is seen within CLIENT_CACHE_TTL_S. Unknown client ids are never kept
(they come from outside and would fill the cache)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from idp.models import Client

CLIENT_CACHE_TTL_S = 5.0
MAX_CLIENTS = 2048  # a bound, not an expectation: the cache starts over when it is reached

_lock = threading.Lock()
# Per database (its URL, password hidden: every engine on the same database shares it, e.g.
# the app's and an in-process `phr idp` command's): client_id -> (loaded at, value).
_entries: dict[str, dict[str, tuple[float, Any]]] = {}
_TOUCHED = "idp_clients_touched"  # Session.info key: client ids flushed in this transaction
# Bumped by every drop: a value loaded while a drop happened may be the row as it was before a
# change another thread has just committed, so it is returned but not kept (a reader's SELECT
# can run before a writer's commit and its store after the writer's drop).
_drops = 0


def cached(s: Session, client_id: str, load: Callable[[], Any]) -> Any:
    """The value `load` made for `client_id` less than CLIENT_CACHE_TTL_S ago, else a fresh one
    (None is returned but not kept)."""
    db = _database(s)
    if db is None:  # a session bound to a connection: no sharing
        return load()
    now = time.monotonic()
    with _lock:
        hit = _entries.get(db, {}).get(client_id)
        drops_before = _drops
    if hit is not None and now - hit[0] < CLIENT_CACHE_TTL_S:
        return hit[1]
    value = load()
    if value is not None and not _changing_clients(s):  # never keep an uncommitted change
        with _lock:
            if _drops != drops_before:  # a change was committed while this one loaded
                return value
            per_db = _entries.setdefault(db, {})
            if len(per_db) >= MAX_CLIENTS:
                per_db.clear()
            per_db[client_id] = (now, value)
    return value


def _changing_clients(s: Session) -> bool:
    """Has this transaction changed a client, flushed or not yet?"""
    if s.info.get(_TOUCHED):
        return True
    return any(isinstance(obj, Client) for obj in (*s.new, *s.dirty, *s.deleted))


def forget(db: str | None = None, client_id: str | None = None) -> None:
    """Drop one client (or every client) of one database (or of all)."""
    global _drops
    with _lock:
        _drops += 1
        for key in [db] if db is not None else list(_entries):
            per_db = _entries.get(key)
            if per_db is None:
                continue
            if client_id is None:
                per_db.clear()
            else:
                per_db.pop(client_id, None)


def drop(s: Session, client_id: str) -> None:
    """Drop one client of `s`'s database, so the next read asks the database."""
    forget(_database(s), client_id)


def _database(s: Session) -> str | None:
    bind = s.get_bind()
    return str(bind.url) if isinstance(bind, Engine) else None


@event.listens_for(Session, "after_flush")
def _note_changes(s: Session, _flush_context: Any) -> None:
    """Clients written by this session: dropped now and again at commit, so a reader that
    loaded the old row between the flush and the commit does not keep it."""
    ids = {
        obj.client_id
        for obj in (*s.new, *s.dirty, *s.deleted)
        if isinstance(obj, Client) and obj.client_id
    }
    if ids:
        s.info.setdefault(_TOUCHED, set()).update(ids)
        _forget_all(s, ids)


@event.listens_for(Session, "after_commit")
def _after_commit(s: Session) -> None:
    ids = s.info.pop(_TOUCHED, None)
    if ids:
        _forget_all(s, ids)


@event.listens_for(Session, "after_rollback")
def _after_rollback(s: Session) -> None:
    s.info.pop(_TOUCHED, None)


def _forget_all(s: Session, ids: set[str]) -> None:
    db = _database(s)
    for client_id in ids:
        forget(db, client_id)
