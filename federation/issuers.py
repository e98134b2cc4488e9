"""Which OpenID providers the federation vouches for, known before any of their tokens arrive.

A resource server (the PHR server, the consent API) must never fetch what an unverified token
names: its `iss` is whatever the sender wrote. So the providers are found the other way round:
the trust anchors (and their intermediates) list their `openid_provider` subordinates, each
one's chain is resolved and its policy-applied metadata kept, and a token's `iss` is looked up
in that list — a dictionary lookup, no network. The list is refreshed in a background thread
(every REFRESH_S, sooner when a chain in it is about to expire, after RETRY_S when something
failed), never on a request's time. A token from an issuer not on the list is refused at once;
it may nudge a refresh, at most once per NUDGE_S whatever the issuer strings are, so a provider
that has just joined is accepted within NUDGE_S and a flood of made-up issuers costs one listing
of the configured anchors per NUDGE_S.

Only the very first lookup waits for the first listing (at most FIRST_WAIT_S, one listing
shared by every waiting request).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from federation.directory import listed
from federation.entity.trust_chain import Resolver
from federation.errors import FederationError

log = logging.getLogger(__name__)

REFRESH_S = 300.0  # list again at least this often: a removed provider is dropped by then
RETRY_S = 30.0  # after a failure on the way
NUDGE_S = 30.0  # an unknown issuer asks for a refresh at most this often, whatever it is
EARLY_S = 60.0  # refresh this long before the first chain in the list expires
FIRST_WAIT_S = 5.0
ENTITY_TYPE = "openid_provider"


@dataclass(frozen=True)
class Provider:
    """An OpenID provider the federation vouches for, with its policy-applied metadata."""

    issuer: str
    metadata: dict[str, Any]
    exp: int  # when its chain expires


class ListedIssuers:
    """The federation's OpenID providers, listed and resolved off the request path."""

    def __init__(self, resolver: Resolver, *, clock: Callable[[], float] = time.time) -> None:
        self.resolver = resolver
        self.clock = clock
        self._providers: dict[str, Provider] = {}
        self._until = float("-inf")  # refresh when the clock passes this
        self._last_start = float("-inf")
        self._refreshing = False
        self._loaded = threading.Event()
        self._lock = threading.Lock()

    def provider(self, issuer: str) -> Provider | None:
        """The provider named `issuer` if the federation lists it and its chain is still
        valid; None otherwise. Never fetches anything on the caller's time (except, once per
        process, waiting for the first listing)."""
        now = self.clock()
        self._maybe_refresh(now, unknown=False)
        if not self._loaded.is_set():
            self._loaded.wait(FIRST_WAIT_S)
        with self._lock:
            found = self._providers.get(issuer)
        if found is None or found.exp <= now:
            self._maybe_refresh(now, unknown=True)
            return None
        return found

    def refresh(self) -> None:
        """List and resolve now, on the caller's thread (the background refresh runs this).
        A provider the listing no longer names is dropped; one still listed whose chain could
        not be resolved this time, or every one when the listing itself failed, is kept until
        its chain expires (a brief outage does not lock a city's people out)."""
        now = self.clock()
        with self._lock:
            self._last_start = max(self._last_start, now)
        found: dict[str, Provider] = {}
        keep: set[str] = set()
        try:
            ids, trouble = listed(self.resolver, self.resolver.fetcher, ENTITY_TYPE)
            for entity_id in ids:
                provider = self._describe(entity_id)
                if provider is None:
                    keep.add(entity_id)
                else:
                    found[entity_id] = provider
        except Exception:  # a refresh must never end the thread unlogged
            log.exception("listing the federation's OpenID providers failed")
            trouble = True
        with self._lock:
            old = self._providers
            for entity_id in set(old) if trouble else keep:
                if entity_id in old and entity_id not in found and old[entity_id].exp > now:
                    found[entity_id] = old[entity_id]
            soon = trouble or bool(keep)
            until = now + (RETRY_S if soon else REFRESH_S)
            for p in found.values():
                until = min(until, max(p.exp - EARLY_S, now + RETRY_S))
            self._providers, self._until = found, until
        self._loaded.set()

    def settled(self, timeout: float = 10.0) -> bool:
        """Wait until no background refresh runs (tests, and a service shutting down)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._refreshing:
                    return True
            time.sleep(0.01)
        return False

    def _describe(self, entity_id: str) -> Provider | None:
        try:
            chain = self.resolver.resolve(entity_id)
        except FederationError as exc:
            log.warning("OpenID provider %s left out: %s", entity_id, exc.reason)
            return None
        op = chain.metadata.provider
        if op is None or op.issuer != entity_id:
            log.warning("OpenID provider %s left out: its metadata names another issuer", entity_id)
            return None
        return Provider(entity_id, op.raw, chain.exp)

    def _maybe_refresh(self, now: float, *, unknown: bool) -> None:
        with self._lock:
            due = now >= self._until or (unknown and now - self._last_start >= NUDGE_S)
            if self._refreshing or not due:
                return
            self._refreshing = True
            self._last_start = now
        threading.Thread(target=self._run, name="federation-issuers", daemon=True).start()

    def _run(self) -> None:
        try:
            self.refresh()
        finally:
            with self._lock:
                self._refreshing = False
