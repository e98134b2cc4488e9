"""Rotating PHR_CONSENT_SECRET_KEY while the portal serves (`phr consent rotate-secret-key`).

The secret signs the portal's session cookies, seals the tokens the portal keeps for each
session (portal.token_store) and the card-verified attributes of pending link requests
(consent.linkage). All three accept several keys, newest first:

1. A new key goes in front. The stored tokens are sealed under it from the next request on;
   after a restart (rolling) the cookies and link requests too, and every session cookie a
   person uses is signed again with the new key (portal.app).
2. After the overlap (a day: the portal drops the tokens of sessions idle longer), `--retire`
   re-seals the stored tokens and pending link requests in small batches, each row only if
   unchanged since it was read, then drops the older keys; restart again. Only a session idle
   for more than a day then needs to sign in again, as it would anyway.
"""

from __future__ import annotations

from sqlalchemy import select, update

from consent.app import attribute_box
from consent.models import LinkRequest
from consent.records import ConsentError
from phr_core import key_rotation
from phr_core.config import ConfigError, Settings
from phr_core.db import Database, rowcount
from portal.token_store import IDLE_LIMIT, TokenStore

VARIABLE = "PHR_CONSENT_SECRET_KEY"
OVERLAP_S = IDLE_LIMIT.total_seconds()
BATCH = 200


def rotate(settings: Settings) -> str:
    """Step 1: a new key in front of the secret."""
    path, entries = key_rotation.prepend(settings, VARIABLE)
    return (
        f"{VARIABLE}: new key in front in {path} ({len(entries)} keys held); restart the "
        f"consent service (rolling). After {int(OVERLAP_S // 3600)} hours run "
        "`phr consent rotate-secret-key --retire` (it re-seals, then drops the older keys) "
        "and restart it again"
    )


def reseal(settings: Settings, db: Database, batch: int = BATCH) -> str:
    """Move what the older keys sealed (stored tokens, pending link requests' attributes)
    under the newest key; a line for the operator. Link requests go first: one that opens under
    no key refuses the retirement before any session's unreadable tokens are dropped."""
    box = attribute_box(settings)
    requests = unreadable = 0
    after = ""
    while True:
        with db.session() as s:
            rows = s.execute(
                select(LinkRequest.id, LinkRequest.attributes)
                .where(LinkRequest.id > after, LinkRequest.attributes.is_not(None))
                .order_by(LinkRequest.id)
                .limit(batch)
            ).all()
            if not rows:
                break
            after = rows[-1][0]
            for request_id, sealed in rows:
                if sealed is None:  # the query leaves these out; this tells the type checker
                    continue
                try:
                    fresh = box.resealed(request_id, sealed)
                except ConsentError:
                    unreadable += 1
                    continue
                if fresh is not None:
                    requests += rowcount(
                        s.execute(
                            update(LinkRequest)
                            .where(LinkRequest.id == request_id, LinkRequest.attributes == sealed)
                            .values(attributes=fresh)
                        )
                    )
    if unreadable:
        raise ConfigError(
            f"{VARIABLE}: {unreadable} link request(s) open under no key held; nothing "
            "retired (restore the key that sealed them, or expire those requests)"
        )
    moved, dropped = TokenStore(db, settings.secret(VARIABLE)).reseal(batch)
    return (
        f"re-sealed {moved} session(s)' stored tokens and {requests} link request(s); "
        f"dropped {dropped} unreadable session(s)"
    )


def retire(settings: Settings, db: Database, *, force: bool) -> str:
    """Step 2: the re-seal pass, then only the newest key kept (under the secret's lock, so no
    rotation can slip in between)."""
    path = key_rotation.secret_file(settings, VARIABLE)
    with key_rotation.locked(path):
        if len(key_rotation.read(path).split()) < 2:
            return f"{VARIABLE}: one key held in {path}, nothing to retire"
        key_rotation.require_overlap(VARIABLE, path, OVERLAP_S, force, "sessions")
        done = reseal(settings, db)
        _, dropped = key_rotation.drop_older(settings, VARIABLE, OVERLAP_S, force=True)
    return f"{done}\n{VARIABLE}: retired {dropped} older key(s) in {path}; restart the service"
