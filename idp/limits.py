"""Attempt limits: after too many failures in a window, a key is refused until the window ends.
Only failures are written, so the normal path costs a primary-key read per key.

What a key is decides who can be locked out, so no key is something an attacker can merely
claim (issue 14):

* client endpoints (`/token`, `/introspect`, `/revoke`, `/par`, see `ClientAttempts`): before
  authentication, failures count per source address (all clients: SOURCE) and per client *and*
  source (TOKEN_ENDPOINT); after a confidential client authenticated, its grant failures count
  per client (only a holder of its credentials can cause them); a public client proves nothing,
  so its failures stay per client and source. A correct credential from another source is
  never refused because of someone else's failures.
* card sign-in (idp.card.sessions): signatures that do not verify count per source (CARD_SOURCE);
  a person (SIGN_IN) is only counted after their card's key proved possession and something
  else failed (a signature certificate of another card).
* passkey sign-in (idp.passkey.views): unknown credentials and signatures that do not verify
  count per source; a person only when their passkey's signature verified and its counter
  went back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Request, Response
from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.errors import OAuthError
from idp.models import Attempt
from idp.tokens import aware, now_utc
from phr_core.db import Database

Kind = tuple[str, int, timedelta]  # (name, failures allowed, window)

TOKEN_ENDPOINT: Kind = ("token", 20, timedelta(minutes=1))  # per client (and source, see above)
SOURCE: Kind = ("source", 100, timedelta(minutes=1))  # per source address, every client
SIGN_IN: Kind = ("sign-in", 5, timedelta(minutes=15))  # per person, after proof of possession
CARD_SOURCE: Kind = ("card-source", 10, timedelta(minutes=15))  # bad card answers per source

# Errors that are guessing: a wrong credential, code, refresh token or PKCE verifier.
COUNTED_ERRORS = frozenset({"invalid_client", "invalid_grant"})


def blocked_for(s: Session, kind: Kind, subject: str) -> int:
    """Seconds until `subject` may try again, 0 when it may now. Read in the caller's
    transaction: the normal path costs one primary-key lookup and no transaction of its own."""
    name, limit, window = kind
    row = s.get(Attempt, f"{name}:{subject}"[:160])
    if row is None:
        return 0
    ends = aware(row.window_start) + window
    if row.failures < limit or ends <= now_utc():
        return 0
    return max(1, int((ends - now_utc()).total_seconds()))


def record_failure(db: Database, kind: Kind, subject: str) -> None:
    """Count one failure, in a transaction of its own: it must stick although the request fails."""
    name, _, window = kind
    key = f"{name}:{subject}"[:160]
    for _ in range(2):  # a concurrent first insert may win; then update
        try:
            with db.session() as s:
                row = s.get(Attempt, key, with_for_update=True)
                now = now_utc()
                if row is None:
                    s.add(Attempt(key=key, window_start=now, failures=1))
                elif aware(row.window_start) + window <= now:
                    row.window_start, row.failures = now, 1
                else:
                    row.failures += 1
            return
        except IntegrityError:
            continue


# --- where a request comes from ---------------------------------------------------------------


def parse_proxies(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """PHR_IDP_TRUSTED_PROXIES: addresses or networks, separated by commas or spaces."""
    nets = []
    for item in text.replace(",", " ").split():
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"PHR_IDP_TRUSTED_PROXIES: {item!r} is not an address") from None
    return tuple(nets)


def source_address(request: Request, proxies: tuple = ()) -> str:
    """The address a request came from: the peer, or, when the peer is a trusted reverse proxy,
    the nearest address in X-Forwarded-For that is not one (a client can prepend anything to
    that header, so it is read from the right)."""

    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in proxies)

    addr = request.remote_addr or "unknown"
    if not proxies or not trusted(addr):
        return addr
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop[:64]
    return addr


# --- the client endpoints ---------------------------------------------------------------------


class TooManyAttempts(OAuthError):
    """429 with Retry-After (RFC 6749 has no code for it; `invalid_request` as before)."""

    def __init__(self, wait: int) -> None:
        super().__init__("invalid_request", f"too many failed attempts; retry in {wait} s", 429)
        self.wait = wait

    def json_response(self) -> Response:
        resp = super().json_response()
        resp.headers["Retry-After"] = str(self.wait)
        return resp


@dataclass
class ClientAttempts:
    """The attempt keys of one request at a client endpoint. Call `check_claimed` before client
    authentication, `check_authenticated` after it, and `record` when the request failed."""

    db: Database
    source: str
    claimed: str | None  # the client id the request claims (unauthenticated)
    authenticated: tuple[str, bool] | None = None  # (client id, public)
    # Rows read so far, by key (None: no row). The claimed client's own key is read with the
    # first query, so the normal path costs one query, as a single key did.
    rows: dict[str, Row[Any] | None] = field(default_factory=dict)

    def _claimed_keys(self) -> list[tuple[Kind, str]]:
        keys = [(SOURCE, self.source)]
        if self.claimed:
            keys.append((TOKEN_ENDPOINT, f"{self.claimed}@{self.source}"))
        return keys

    def _client_keys(self) -> list[tuple[Kind, str]]:
        assert self.authenticated is not None  # noqa: S101 - narrowing: callers set it first
        client_id, public = self.authenticated
        if public:  # anyone can claim a public client: never count it without the source
            return [(SOURCE, self.source), (TOKEN_ENDPOINT, f"{client_id}@{self.source}")]
        return [(SOURCE, self.source), (TOKEN_ENDPOINT, client_id)]

    def check_claimed(self, s: Session) -> None:
        ahead = [(TOKEN_ENDPOINT, self.claimed)] if self.claimed else []
        self._check(s, self._claimed_keys(), ahead)

    def check_authenticated(self, s: Session, client_id: str, public: bool) -> None:
        self.authenticated = (client_id, public)
        self._check(s, self._client_keys())

    def _check(
        self, s: Session, keys: list[tuple[Kind, str]], ahead: Sequence[tuple[Kind, str]] = ()
    ) -> None:
        """Refuse when any of `keys` is over its limit; reads the keys not read yet (and those
        `ahead`, for the next stage) in one query."""
        name = {f"{kind[0]}:{subject}"[:160]: kind for kind, subject in [*keys, *ahead]}
        missing = sorted(k for k in name if k not in self.rows)
        if missing:
            self.rows.update(dict.fromkeys(missing))
            table = Attempt.__table__  # a plain SELECT: the rows are only read (idp.rows)
            found = s.execute(select(table).where(table.c.key.in_(missing)))
            self.rows.update((row.key, row) for row in found)
        now = now_utc()
        wait = 0
        for kind, subject in keys:
            row = self.rows[f"{kind[0]}:{subject}"[:160]]
            if row is None:
                continue
            _, limit, window = kind
            ends = aware(row.window_start) + window
            if row.failures >= limit and ends > now:
                wait = max(wait, max(1, int((ends - now).total_seconds())))
        if wait:
            raise TooManyAttempts(wait)

    def record(self, err: OAuthError) -> None:
        """Count a guessing failure against the keys of the stage the request reached."""
        if err.error not in COUNTED_ERRORS or isinstance(err, TooManyAttempts):
            return
        keys = self._client_keys() if self.authenticated else self._claimed_keys()
        for kind, subject in dict.fromkeys(keys):
            record_failure(self.db, kind, subject)
