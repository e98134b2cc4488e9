"""The portal's tokens for the PHR server, kept server side.

The browser's session cookie holds only a random handle; the access and refresh tokens live in
`consent_portal_tokens`, keyed by the handle's SHA-256 and sealed with AES-256-GCM under a key
derived from PHR_CONSENT_SECRET_KEY for this one purpose (the handle hash is the associated
data, so a sealed row cannot be moved to another session). A copy of the database alone
yields neither a usable handle nor a token.

Refresh tokens rotate at the IdP and a replayed one revokes the whole family, so two requests
of one browser must never refresh at once: a request first claims the row (`refreshing_since`,
a compare-and-set UPDATE that works alike on SQLite and PostgreSQL), refreshes without holding
a transaction open, and stores the new pair; the others wait for it. The claim also requires
the row to still hold the tokens the request read, so a request that read just before another
stored a new pair never refreshes with the spent refresh token.

A person's records may sit on several PHR servers (a family that moved: one per city, found
through the federation). The sign-in's access token is for the configured PHR server; a token
for another server comes from refreshing with RFC 8707 `resource=` and is kept in the same row
next to the first (`others`), so every server's token shares the one rotating refresh token and
the same one-refresh-at-a-time claim.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from sqlalchemy import Delete, Update, delete, or_, select, update
from sqlalchemy.orm import Session

from consent.models import PortalTokens, utcnow
from phr_core.db import Database, rowcount
from phr_core.rotating_aead import RotatingAead

KEY_PURPOSE = "portal-tokens/v1"
EARLY_REFRESH = timedelta(seconds=30)  # refresh this long before the access token expires
REFRESH_CLAIM = timedelta(seconds=15)  # a claim older than this is taken over (crashed worker)
WAIT_STEP_S = 0.1
IDLE_LIMIT = timedelta(days=1)  # rows unused this long are dropped by `purge_idle`


class TokensGone(Exception):
    """No usable tokens for this handle: the person must sign in again."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: float  # epoch seconds of the access token's expiry
    # Access tokens for other PHR servers: resource (FHIR base URL) → (token, expiry).
    others: dict[str, tuple[str, float]] = field(default_factory=dict)

    def for_resource(self, resource: str | None) -> tuple[str, float] | None:
        """The access token (and its expiry) for `resource`; None = the sign-in's own."""
        if resource is None:
            return self.access_token, self.expires_at
        return self.others.get(resource)

    def with_fresh(self, resource: str | None, fresh: Tokens) -> Tokens:
        """These tokens with `fresh` (a refresh's answer) in `resource`'s place: the rotated
        refresh token replaces the old one for every server."""
        if resource is None:
            return Tokens(fresh.access_token, fresh.refresh_token, fresh.expires_at, self.others)
        others = {**self.others, resource: (fresh.access_token, fresh.expires_at)}
        return Tokens(self.access_token, fresh.refresh_token, self.expires_at, others)

    @classmethod
    def from_response(cls, body: dict[str, object], old_refresh: str | None = None) -> Tokens:
        """From a token endpoint response (RFC 6749 5.1)."""
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise TokensGone("the token response holds no access token")
        expires_in = body.get("expires_in")
        ttl = int(expires_in) if isinstance(expires_in, int | float | str) else 300
        refresh = body.get("refresh_token")
        return cls(access, refresh if isinstance(refresh, str) else old_refresh, time.time() + ttl)


def _hash(handle: str) -> str:
    return hashlib.sha256(handle.encode()).hexdigest()


class TokenStore:
    def __init__(self, db: Database, secret: str) -> None:
        self.db = db
        # PHR_CONSENT_SECRET_KEY may hold several keys, newest first (`phr consent
        # rotate-secret-key`): seal under the newest, open under any.
        self._aead = RotatingAead.of(secret, KEY_PURPOSE)

    # --- sealing ---------------------------------------------------------------------------

    def _seal(self, key: str, tokens: Tokens) -> str:
        nonce = os.urandom(12)
        doc: dict[str, object] = {
            "a": tokens.access_token,
            "r": tokens.refresh_token,
            "e": tokens.expires_at,
        }
        if tokens.others:
            doc["o"] = {k: list(v) for k, v in tokens.others.items()}
        data = json.dumps(doc).encode()
        return base64.b64encode(nonce + self._aead.encrypt(nonce, data, key.encode())).decode()

    def _open(self, key: str, sealed: str) -> Tokens:
        raw = base64.b64decode(sealed)
        try:
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], key.encode()))
        except (InvalidTag, ValueError):
            raise TokensGone("the stored tokens cannot be decrypted") from None
        others = {k: (str(v[0]), float(v[1])) for k, v in (data.get("o") or {}).items()}
        return Tokens(data["a"], data["r"], float(data["e"]), others)

    # --- the API ---------------------------------------------------------------------------

    def save(self, subject: str, tokens: Tokens) -> str:
        """Store a new sign-in's tokens; returns the handle for the session cookie."""
        handle = secrets.token_urlsafe(32)
        key = _hash(handle)
        with self.db.session() as s:
            s.add(
                PortalTokens(
                    handle_hash=key,
                    subject=subject,
                    sealed=self._seal(key, tokens),
                    access_expires_at=_from_epoch(tokens.expires_at),
                )
            )
        return handle

    def drop(self, handle: str) -> Tokens | None:
        """Forget a handle's tokens (sign-out); returns them so the caller can revoke them."""
        key = _hash(handle)
        with self.db.session() as s:
            row = s.get(PortalTokens, key)
            if row is None:
                return None
            sealed = row.sealed
            s.delete(row)
        try:
            return self._open(key, sealed)
        except TokensGone:
            return None

    def access_token(
        self,
        handle: str,
        subject: str,
        refresh: Callable[..., dict[str, object]],
        *,
        wait_s: float = 10.0,
        resource: str | None = None,
    ) -> str:
        """A valid access token for this handle, refreshed through `refresh(refresh_token)`
        (the IdP's token endpoint) when it is about to expire. With `resource` (another PHR
        server's base URL), the token for that server: kept ones are reused, a new one comes
        from `refresh(refresh_token, resource=…)`. Raises TokensGone."""
        key = _hash(handle)
        deadline = time.monotonic() + wait_s
        while True:
            now = utcnow()
            with self.db.session() as s:
                row = s.get(PortalTokens, key)
                if row is None or row.subject != subject:
                    raise TokensGone("no tokens for this session")
                seen = row.sealed
                tokens = self._open(key, seen)
                row.last_used_at = now
                kept = tokens.for_resource(resource)
                if kept is not None and kept[1] - EARLY_REFRESH.total_seconds() > time.time():
                    return kept[0]
                if not tokens.refresh_token:
                    if resource is None:
                        s.delete(row)
                    raise TokensGone("the access token expired and there is no refresh token")
            with self.db.session() as s:
                claimed = rowcount(
                    s.execute(
                        update(PortalTokens)
                        .where(
                            PortalTokens.handle_hash == key,
                            # Only the tokens we read: had another request stored a new pair in
                            # between, refreshing with our (now used) refresh token would be a
                            # replay, and the IdP would revoke the whole family.
                            PortalTokens.sealed == seen,
                            or_(
                                PortalTokens.refreshing_since.is_(None),
                                PortalTokens.refreshing_since < now - REFRESH_CLAIM,
                            ),
                        )
                        .values(refreshing_since=now)
                    )
                )
            if claimed == 1:
                return self._refresh(key, tokens, refresh, resource)
            if time.monotonic() > deadline:
                raise TokensGone("another request is refreshing the tokens")
            time.sleep(WAIT_STEP_S)

    def _refresh(
        self,
        key: str,
        tokens: Tokens,
        refresh: Callable[..., dict[str, object]],
        resource: str | None,
    ) -> str:
        assert tokens.refresh_token is not None  # noqa: S101 (checked by the caller)
        try:
            answer = (
                refresh(tokens.refresh_token)
                if resource is None
                else refresh(tokens.refresh_token, resource=resource)
            )
            fresh = Tokens.from_response(answer, tokens.refresh_token)
        except TokensGone:
            with self.db.session() as s:
                s.execute(delete(PortalTokens).where(PortalTokens.handle_hash == key))
            raise
        except Exception:
            with self.db.session() as s:  # let the next request try again
                s.execute(
                    update(PortalTokens)
                    .where(PortalTokens.handle_hash == key)
                    .values(refreshing_since=None)
                )
            raise
        with self.db.session() as s:
            s.execute(
                update(PortalTokens)
                .where(PortalTokens.handle_hash == key)
                .values(
                    sealed=self._seal(key, tokens.with_fresh(resource, fresh)),
                    access_expires_at=_from_epoch(
                        fresh.expires_at if resource is None else tokens.expires_at
                    ),
                    refreshing_since=None,
                )
            )
        return fresh.access_token

    def reseal(self, batch: int = 200) -> tuple[int, int]:
        """Move the rows an older key sealed under the newest, a batch per transaction; a row
        changed meanwhile (a refresh stored new tokens, sealed under the newest) is left as
        it is. Returns (re-sealed, unreadable: sealed under no key held, so dropped)."""
        moved = dropped = 0
        after = ""
        while True:
            with self.db.session() as s:
                rows = s.execute(
                    select(PortalTokens.handle_hash, PortalTokens.sealed)
                    .where(PortalTokens.handle_hash > after)
                    .order_by(PortalTokens.handle_hash)
                    .limit(batch)
                ).all()
                if not rows:
                    return moved, dropped
                after = rows[-1][0]
                for key, sealed in rows:
                    raw = base64.b64decode(sealed)
                    try:
                        if not self._aead.needs_reseal(raw[:12], raw[12:], key.encode()):
                            continue
                    except InvalidTag:
                        dropped += _cas(s, delete(PortalTokens), key, sealed)
                        continue
                    fresh = self._seal(key, self._open(key, sealed))
                    moved += _cas(s, update(PortalTokens).values(sealed=fresh), key, sealed)

    def purge_idle(self, older_than: timedelta = IDLE_LIMIT) -> int:
        """Drop rows of sessions nobody used for a while (browser closed without sign-out)."""
        with self.db.session() as s:
            return rowcount(
                s.execute(
                    delete(PortalTokens).where(PortalTokens.last_used_at < utcnow() - older_than)
                )
            )


def _cas(s: Session, stmt: Update | Delete, key: str, sealed: str) -> int:
    """Run `stmt` on the row only if it still holds `sealed` (compare-and-set)."""
    where = (PortalTokens.handle_hash == key, PortalTokens.sealed == sealed)
    return rowcount(s.execute(stmt.where(*where)))


def _from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)
