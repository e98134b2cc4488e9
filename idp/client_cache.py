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
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from idp.models import Client

CLIENT_CACHE_TTL_S = 5.0
MAX_CLIENTS = 2048  # a bound, not an expectation: the cache starts over when it is reached

_lock = threading.Lock()
# Per database (engine): client_id -> (loaded at, value). Weak keys: tests make many engines.
_entries: weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, Any]]] = (
    weakref.WeakKeyDictionary()
)
_TOUCHED = "idp_clients_touched"  # Session.info key: client ids flushed in this transaction


def cached(s: Session, client_id: str, load: Callable[[], Any]) -> Any:
    """The value `load` made for `client_id` less than CLIENT_CACHE_TTL_S ago, else a fresh one
    (None is returned but not kept)."""
    engine = s.get_bind()
    if not isinstance(engine, Engine):  # a session bound to a connection: no sharing
        return load()
    now = time.monotonic()
    with _lock:
        hit = _entries.get(engine, {}).get(client_id)
    if hit is not None and now - hit[0] < CLIENT_CACHE_TTL_S:
        return hit[1]
    value = load()
    if value is not None and not s.info.get(_TOUCHED):  # never keep an uncommitted change
        with _lock:
            per_db = _entries.setdefault(engine, {})
            if len(per_db) >= MAX_CLIENTS:
                per_db.clear()
            per_db[client_id] = (now, value)
    return value


def forget(engine: Engine | None = None, client_id: str | None = None) -> None:
    """Drop one client (or every client) of one database (or of all)."""
    with _lock:
        for key in [engine] if engine is not None else list(_entries):
            per_db = _entries.get(key) if key is not None else None
            if per_db is None:
                continue
            if client_id is None:
                per_db.clear()
            else:
                per_db.pop(client_id, None)


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
    engine = s.get_bind()
    for client_id in ids:
        forget(engine if isinstance(engine, Engine) else None, client_id)
