"""The process cache of client rows (idp.client_cache): a change committed in this process is
seen at once, whatever engine made it; one made elsewhere within CLIENT_CACHE_TTL_S; an
uncommitted change is never kept."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from flask import Flask
from sqlalchemy import text

from idp import client_cache
from idp.clients import _load, get_client
from idp.models import Client
from phr_core.db import Database


def _name(db: Database, client_id: str) -> str | None:
    with db.session() as s:
        client = get_client(s, client_id)
        return client.name if client else None


def test_change_in_this_process_is_seen_at_once(idp_app: Flask, register) -> None:
    register("rp-c")
    db = idp_app.extensions["phr_db"]
    assert _name(db, "rp-c") == "Test RP rp-c"  # now cached
    other = Database(db.url)  # another engine on the same database: an in-process command
    try:
        with other.session() as s:
            row = s.get(Client, "rp-c")
            assert row is not None
            row.client_name = "Renamed"
        assert _name(db, "rp-c") == "Renamed"
        with other.session() as s:
            s.delete(s.get(Client, "rp-c"))
        assert _name(db, "rp-c") is None
    finally:
        other.dispose()


def test_uncommitted_change_is_not_kept(idp_app: Flask, register) -> None:
    register("rp-c")
    db = idp_app.extensions["phr_db"]
    for flushed in (False, True):  # read while the change is pending, or flushed
        with pytest.raises(RuntimeError), db.session() as s:
            row = s.get(Client, "rp-c")
            assert row is not None
            row.client_name = "Never committed"
            if flushed:
                s.flush()
            seen = get_client(s, "rp-c")
            assert seen is not None and seen.name == "Never committed"
            raise RuntimeError("roll back")
        assert _name(db, "rp-c") == "Test RP rp-c"


def test_change_by_another_process_is_seen_within_the_ttl(
    idp_app: Flask, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_cache, "CLIENT_CACHE_TTL_S", 0.5)
    register("rp-c")
    db = idp_app.extensions["phr_db"]
    assert _name(db, "rp-c") == "Test RP rp-c"
    with db.engine.begin() as conn:  # plain SQL, as another worker or replica would write it
        conn.execute(
            text("UPDATE idp_client SET client_name = 'Elsewhere' WHERE client_id = 'rp-c'")
        )
    assert _name(db, "rp-c") == "Test RP rp-c"  # the cached row, for at most the TTL
    time.sleep(0.6)
    assert _name(db, "rp-c") == "Elsewhere"


def test_a_row_read_before_a_change_committed_meanwhile_is_not_kept(
    idp_app: Flask, register
) -> None:
    """A reader's SELECT runs before another thread commits a deletion, its store after the
    writer's drop: the old row is returned to that reader but never kept for the next one."""
    register("rp-race")
    db = idp_app.extensions["phr_db"]
    client_cache.forget()
    with db.session() as reader:

        def load():  # type: ignore[no-untyped-def]
            found = _load(reader, "rp-race")  # the reader's SELECT: the row as it was
            with db.session() as writer:  # another request thread deletes and commits now
                writer.delete(writer.get(Client, "rp-race"))
            return found

        assert client_cache.cached(reader, "rp-race", load) is not None
    with db.session() as s:
        assert get_client(s, "rp-race") is None


def test_a_redirect_registered_by_another_process_is_taken_at_once(
    idp_app: Flask, register
) -> None:
    """`phr dev example --port N` adds a redirect from its own process while the IdP has the
    client cached: /authorize asks the database before it refuses a redirect it does not know,
    and still refuses one that is really not registered."""
    register("rp-r")
    db = idp_app.extensions["phr_db"]
    assert _name(db, "rp-r") == "Test RP rp-r"  # now cached
    added = "https://rp.example.jp/other"
    with db.engine.begin() as conn:  # plain SQL, as another process would write it
        meta = conn.execute(
            text("SELECT client_metadata FROM idp_client WHERE client_id = 'rp-r'")
        ).scalar_one()
        meta = json.loads(meta) if isinstance(meta, str) else meta
        meta["redirect_uris"].append(added)
        conn.execute(
            text("UPDATE idp_client SET client_metadata = :m WHERE client_id = 'rp-r'"),
            {"m": json.dumps(meta)},
        )
    client = idp_app.test_client()
    base = {"response_type": "code", "client_id": "rp-r", "scope": "openid", "state": "s"}
    base |= {"code_challenge": "x" * 43, "code_challenge_method": "S256"}
    ok = client.get("/authorize?" + urlencode({**base, "redirect_uri": added}))
    assert ok.status_code == 302, ok.get_data(as_text=True)[:300]
    bad = client.get(
        "/authorize?" + urlencode({**base, "redirect_uri": "https://rp.example.jp/never"})
    )
    assert bad.status_code == 400
    assert "redirect_uri is not registered" in bad.get_data(as_text=True)
