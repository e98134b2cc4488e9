"""Fetching federation documents over HTTP. Trust-chain code talks to a `Fetcher`, so tests
and a single-process development setup can route requests to real in-process apps instead
of the network."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from federation.errors import UNREACHABLE, FederationError
from phr_core import outbound
from phr_core.config import Settings, is_loopback_host
from phr_core.outbound import AddressPolicy, Outbound, OutboundError

MAX_BODY = 256 * 1024  # entity statements are small; a huge body is an attack or a mistake


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    body: str


class Fetcher(Protocol):
    def get(self, url: str) -> Fetched: ...

    def post(self, url: str, form: dict[str, str]) -> Fetched: ...


def with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def acceptable_entity_id(entity_id: str, *, allow_http_loopback: bool = True) -> bool:
    """Entity identifiers are https URLs without query or fragment (section 1.2); plain http
    only on loopback, for development."""
    parts = urlsplit(entity_id)
    if parts.query or parts.fragment or not parts.hostname:
        return False
    if parts.scheme == "https":
        # Outside development an entity id never names an internal address: the IdP fetches
        # whatever client_id an unauthenticated request names, and must not be a proxy inward.
        return allow_http_loopback or not _internal_ip(parts.hostname)
    return parts.scheme == "http" and allow_http_loopback and is_loopback_host(parts.hostname)


def _internal_ip(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith((".localhost", ".internal", ".local"))
    return not ip.is_global


class UrlFetcher:
    """The real thing: phr_core.outbound (shared concurrency bound, short deadline, address
    policy checked after DNS, no redirects followed) with the entity-id rules on top."""

    def __init__(
        self, outbound: Outbound | None = None, *, allow_http_loopback: bool = True
    ) -> None:
        self.allow_http_loopback = allow_http_loopback
        self.outbound = outbound or Outbound(AddressPolicy(production=not allow_http_loopback))

    @classmethod
    def for_settings(cls, settings: Settings) -> UrlFetcher:
        """A service's fetcher: production per PHR_ENV, its configured origins allowed."""
        return cls(outbound.for_settings(settings), allow_http_loopback=not settings.production)

    def get(self, url: str) -> Fetched:
        return self._open(url, None)

    def post(self, url: str, form: dict[str, str]) -> Fetched:
        return self._open(url, form)

    def _open(self, url: str, form: dict[str, str] | None) -> Fetched:
        base = url.split("?", 1)[0]
        if not acceptable_entity_id(base, allow_http_loopback=self.allow_http_loopback):
            raise FederationError(UNREACHABLE, f"{base} is not an https URL")
        accept = "application/*+jwt, application/json"
        try:
            if form is None:
                resp = self.outbound.get(url, accept=accept, max_body=MAX_BODY)
            else:
                resp = self.outbound.post_form(url, form, accept=accept, max_body=MAX_BODY)
        except OutboundError as exc:
            raise FederationError(UNREACHABLE, f"{base}: {exc}") from None
        return Fetched(resp.status, resp.content_type, resp.body.decode("utf-8", "replace"))
