"""Who is asking: the request's access token, verified (RFC 9068, through a cache), and its
DPoP proof when the token is bound to a key (dpop.py). Every route authenticates here, `$erase`
included; what the caller may then do is the policy's to say (phr_server.policy)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from flask import current_app, request

from phr_core.tokens import AccessToken, InvalidToken
from phr_server import dpop


class Unauthenticated(Exception):
    """401; `dpop_error` names the DPoP challenge's error when the proof was refused."""

    def __init__(self, message: str, dpop_error: str | None = None) -> None:
        super().__init__(message)
        self.dpop_error = dpop_error


class TokenCache:
    """Verified tokens, by SHA-256 of the token, for up to a minute (never past `exp`): the
    signature check costs more than everything else of a read. Consent is still asked per
    request (through its cache). When full, the oldest entries make room (insertion order),
    not the whole cache; and each insert first drops the oldest entries whose minute is over,
    so the cache holds about a minute of tokens instead of filling up to `size` with dead ones
    (every refresh makes a new token: the 30-minute soak saw the PHR server grow by the
    cache's fill, ~0.7 MB a minute, bench/soak.md)."""

    def __init__(
        self,
        size: int = 4096,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.time,  # epoch seconds, as `exp`; tests pass their own
    ) -> None:
        self.size, self.ttl, self.clock = size, ttl, clock
        self._items: dict[str, tuple[float, AccessToken]] = {}
        self._lock = threading.Lock()

    def get(self, raw: str, verify: Callable[[str], AccessToken]) -> AccessToken:
        key = hashlib.sha256(raw.encode()).hexdigest()
        now = self.clock()
        hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        token = verify(raw)
        with self._lock:
            self._items.pop(key, None)
            # Inserted in time order, each kept at most `ttl`: once the oldest is still
            # alive, so is every entry after it that was kept for the full `ttl`.
            while self._items:
                oldest = next(iter(self._items))
                if self._items[oldest][0] > now and len(self._items) < self.size:
                    break
                del self._items[oldest]
            self._items[key] = (min(now + self.ttl, token.expires_at), token)
        return token


def credentials() -> tuple[AccessToken, str]:
    """The request's verified token and its raw text, or Unauthenticated."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    scheme, raw = scheme.lower(), raw.strip()
    if scheme not in ("bearer", "dpop") or not raw:
        raise Unauthenticated("an access token is required (Bearer or DPoP)")
    ext = current_app.extensions
    try:
        token = ext["phr_token_cache"].get(raw, ext["phr_verifier"].verify)
    except InvalidToken as exc:
        raise Unauthenticated(str(exc)) from None
    try:
        dpop.check(scheme, raw, token)
    except dpop.ProofRefused as exc:
        raise Unauthenticated(str(exc), exc.error) from None
    return token, raw
