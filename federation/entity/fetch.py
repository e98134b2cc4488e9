"""Fetching federation documents over HTTP. Trust-chain code talks to a `Fetcher`, so tests
and a single-process development setup can route requests to real in-process apps instead
of the network."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from federation.errors import UNREACHABLE, FederationError
from phr_core.config import is_loopback_host

MAX_BODY = 256 * 1024  # entity statements are small; a huge body is an attack or a mistake
TIMEOUT_S = 5.0


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
    """The real thing: urllib with a timeout, a size limit and no redirects followed."""

    def __init__(self, *, allow_http_loopback: bool = True) -> None:
        self.allow_http_loopback = allow_http_loopback

    def get(self, url: str) -> Fetched:
        return self._open(url, None)

    def post(self, url: str, form: dict[str, str]) -> Fetched:
        return self._open(url, urlencode(form).encode("ascii"))

    def _open(self, url: str, data: bytes | None) -> Fetched:
        base = url.split("?", 1)[0]
        if not acceptable_entity_id(base, allow_http_loopback=self.allow_http_loopback):
            raise FederationError(UNREACHABLE, f"{base} is not an https URL")
        headers = {"Accept": "application/*+jwt, application/json"}
        request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (checked)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=TIMEOUT_S) as resp:
                body = resp.read(MAX_BODY + 1)
                status, ctype = resp.status, resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            body, status = exc.read(MAX_BODY + 1), exc.code
            ctype = exc.headers.get("Content-Type", "")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise FederationError(UNREACHABLE, f"{base}: {type(exc).__name__}") from None
        if len(body) > MAX_BODY:
            raise FederationError(UNREACHABLE, f"{base}: response larger than {MAX_BODY} bytes")
        return Fetched(status, ctype.split(";")[0].strip(), body.decode("utf-8", "replace"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None
