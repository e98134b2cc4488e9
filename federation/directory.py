"""Which PHR server holds which municipality's records, found through the federation.

A PHR server names the municipalities it serves in its `oauth_resource` metadata
(`phr_municipalities`, 全国地方公共団体コード), and its superior may narrow that list with a
metadata policy (`subset_of`), so a server cannot claim a city the federation did not give it.
Apps, the portal, the consent service and the IdP list the protected resources under each trust
anchor (and below its intermediates), resolve each one's chain and keep those that validate:
a server removed from the federation drops out when its chain expires, a new city's server
appears without anyone editing configuration.

Without a trust anchor (a single-city installation) the directory is the one configured PHR
server, serving every municipality.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Flask

from federation import keys
from federation.entity.fetch import Fetcher, UrlFetcher, with_query
from federation.entity.trust_chain import MAX_DEPTH, Resolver, TrustChain
from federation.errors import FederationError
from phr_core.config import Settings

log = logging.getLogger(__name__)

METADATA_KEY = "phr_municipalities"
REFRESH_S = 300  # list again at least this often, even when every chain lives longer
RETRY_S = 30  # after a failed listing or chain: soon, so a brief outage is not kept for long
ANY_MUNICIPALITY = "*"


@dataclass(frozen=True)
class PhrServer:
    """A PHR server as the federation describes it."""

    entity_id: str
    resource: str  # its FHIR base URL (the `resource` of RFC 9728 metadata, the token audience)
    municipalities: tuple[str, ...]
    exp: int  # when the chain that vouches for it expires

    def serves(self, municipality: str) -> bool:
        return ANY_MUNICIPALITY in self.municipalities or municipality in self.municipalities


def home_server(resource: str) -> PhrServer:
    """The PHR server a service is configured with (PHR_FHIR_URL): it takes every municipality
    no server in the federation names, so a single-city installation needs no federation."""
    return PhrServer(resource.rstrip("/"), resource.rstrip("/"), (ANY_MUNICIPALITY,), 2**62)


class Directory:
    """The federation's PHR servers, listed and validated, cached until the first chain in it
    expires (at most REFRESH_S), plus the configured home server. Without a resolver (no trust
    anchor configured) it is the home server alone."""

    def __init__(
        self,
        home: PhrServer,
        fetcher: Fetcher | None = None,
        resolver: Resolver | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.home = home
        self.fetcher = fetcher
        self.resolver = resolver
        self.clock = clock
        self._servers: list[PhrServer] = []
        self._until = 0.0
        self._trouble = False
        self._lock = threading.Lock()

    def servers(self, *, fresh: bool = False) -> list[PhrServer]:
        now = self.clock()
        with self._lock:
            if not fresh and now < self._until:
                return list(self._servers)
        self._trouble = False
        found = self._discover(now)
        until = min([now + (RETRY_S if self._trouble else REFRESH_S), *(s.exp for s in found)])
        with self._lock:
            self._servers, self._until = found, until
        return list(found)

    def server_for(self, municipality: str) -> PhrServer | None:
        """The server holding `municipality`'s records (a server naming the city explicitly
        wins over one serving any city; among equals the first by entity id)."""
        servers = self.servers()
        named = [s for s in servers if municipality in s.municipalities]
        if len(named) > 1:
            log.warning(
                "municipality %s is claimed by %d PHR servers; using %s",
                municipality,
                len(named),
                named[0].entity_id,
            )
        candidates = named or [s for s in servers if s.serves(municipality)]
        return candidates[0] if candidates else None

    def by_resource(self, resource: str) -> PhrServer | None:
        """The server whose FHIR base URL is `resource` (an RFC 8707 resource indicator)."""
        wanted = resource.rstrip("/")
        return next((s for s in self.servers() if s.resource.rstrip("/") == wanted), None)

    # --- discovery -----------------------------------------------------------------------------

    def _discover(self, now: float) -> list[PhrServer]:
        found: dict[str, PhrServer] = {}
        if self.resolver is not None and self.fetcher is not None:
            for entity_id in self._leaves():
                server = self._describe(entity_id)
                if server is not None:
                    found[entity_id] = server
        listed = sorted(found.values(), key=lambda s: s.entity_id)
        if not any(s.resource == self.home.resource for s in listed):
            listed.append(self.home)
        return listed

    def _leaves(self) -> Iterable[str]:
        """Entity ids of protected resources below every trust anchor, through intermediates."""
        if self.resolver is None or self.fetcher is None:
            return []
        ids, trouble = listed(self.resolver, self.fetcher, "oauth_resource")
        self._trouble = self._trouble or trouble
        return ids

    def _chain(self, entity_id: str, what: str) -> TrustChain | None:
        """The entity's validated chain, or None (logged, and listed again soon) without one."""
        if self.resolver is None:
            return None
        try:
            return self.resolver.resolve(entity_id)
        except FederationError as exc:
            log.warning("%s %s left out: %s", what, entity_id, exc.reason)
            self._trouble = True
            return None

    def _describe(self, entity_id: str) -> PhrServer | None:
        chain = self._chain(entity_id, "PHR server")
        if chain is None:
            return None
        md = chain.metadata.phr_server(METADATA_KEY)
        if md is None:
            return None  # a protected resource that is not a PHR server (the consent API, …)
        return PhrServer(entity_id, md.resource, md.municipalities, chain.exp)


def listed(resolver: Resolver, fetcher: Fetcher, entity_type: str) -> tuple[list[str], bool]:
    """Entity ids of `entity_type` the federation lists below every trust anchor (through
    intermediates, each authority's chain validated first), and whether anything on the way
    failed (so the caller lists again soon). Only authorities the chains lead to are asked:
    nothing here fetches a URL a request named."""
    found: list[str] = []
    trouble = False
    seen: set[str] = set()
    authorities = [(anchor, 0) for anchor in resolver.trust_anchors]
    while authorities:
        authority, depth = authorities.pop(0)
        if authority in seen or depth > MAX_DEPTH:
            continue
        seen.add(authority)
        try:
            chain = resolver.resolve(authority)
        except FederationError as exc:
            log.warning("federation authority %s left out: %s", authority, exc.reason)
            trouble = True
            continue
        endpoint = chain.statements[0].endpoints.list
        if not endpoint:
            continue
        ids, failed = _list(fetcher, with_query(endpoint, entity_type=entity_type))
        subs, failed_too = _list(fetcher, with_query(endpoint, intermediate="true"))
        trouble = trouble or failed or failed_too
        found += [i for i in ids if i not in found]
        authorities += [(sub, depth + 1) for sub in subs]
    return found, trouble


def _list(fetcher: Fetcher, url: str) -> tuple[list[str], bool]:
    try:
        fetched = fetcher.get(url)
    except FederationError as exc:
        log.warning("federation list %s: %s", url, exc.reason)
        return [], True
    if fetched.status != 200:
        log.warning("federation list %s: HTTP %s", url, fetched.status)
        return [], True
    try:
        ids = json.loads(fetched.body)
    except ValueError:
        return [], True
    return ([i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []), False


def for_settings(settings: Settings) -> Directory:
    """The directory a service uses: its configured PHR server, plus every PHR server under
    the configured trust anchors."""
    home = home_server(settings.urls["fhir"])
    anchors = keys.trust_anchors(settings)
    if not anchors:
        return Directory(home)
    fetcher = UrlFetcher.for_settings(settings)
    return Directory(home, fetcher, Resolver(fetcher, anchors))


def of_app(app: Flask) -> Directory:
    """The directory of a running service, made on first use (tests may put their own in
    `app.extensions["phr_directory"]`)."""
    existing = app.extensions.get("phr_directory")
    if existing is None:
        existing = for_settings(app.extensions["phr_settings"])
        app.extensions["phr_directory"] = existing
    return existing
