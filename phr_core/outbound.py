"""Outbound HTTP from the services, bounded: the one way a service fetches a URL that anyone
but its operator could have named (a federation entity id, a client's `jwks_uri`, an issuer's
keys, a logout callback).

Why one module: a service that fetches what a request names can be turned into a proxy into
its own network (server-side request forgery) or tied up waiting on addresses that never
answer. Every fetch here

* waits for one of `MAX_CONCURRENT` slots shared by the whole process, and gives up at once
  when none frees within `SLOT_WAIT_S` (a flood of slow fetches cannot queue up requests); at
  most `PER_ADDRESS` of them to any one address (one silent host cannot take every slot);
* has a short connect timeout and an overall deadline, and a response-size cap;
* follows no redirect (a 3xx is answered as it is, so it cannot lead anywhere unchecked);
* resolves the host itself, checks every address against `AddressPolicy`, and connects to a
  checked address (DNS cannot answer differently between the check and the connection);
* remembers for `UNREACHABLE_TTL_S` an address that did not answer, so varying the URL (path,
  query, host names pointing at it) does not buy another wait.

`AddressPolicy`: in production only public (globally routable) addresses over https, plus the
origins the operator configured (the services' own public URLs, which may well sit on a private
network). In development, loopback too (everything runs on 127.0.0.1), but never private,
link-local, shared (CGNAT), multicast, unspecified or cloud-metadata addresses unless
configured.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from phr_core import request_ids
from phr_core.config import Settings, load_settings

MAX_CONCURRENT = 8
PER_ADDRESS = 2  # outside the configured origins
SLOT_WAIT_S = 1.0
CONNECT_TIMEOUT_S = 2.0
DEADLINE_S = 4.0
MAX_BODY = 512 * 1024
UNREACHABLE_TTL_S = 30.0
_UNREACHABLE_MAX = 4096

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses cloud providers answer instance metadata (and credentials) on; most are link-local
# or private already, listed so the reason is named and none slips through a future rule.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, …
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class OutboundError(OSError):
    """A fetch that was refused or failed; the message names no secret and is safe to log.
    An OSError, so callers that already handle network failures handle these too."""


class AddressRefused(OutboundError):
    """The URL names an address this service must not reach."""


class Busy(OutboundError):
    """Every outbound slot is taken; try again later."""


class Unreachable(OutboundError):
    """The host did not answer in time (or recently did not)."""


class TooLarge(OutboundError):
    """The answer is larger than the caller accepts."""


def origin_of(url: str) -> str:
    """`scheme://host:port`, lower-cased, with the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = 0
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def internal_reason(ip: IP) -> str | None:
    """Why `ip` is not a public address (None when it is one)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return internal_reason(embedded)
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: the IPv4 address inside
            return internal_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a fetch may reach. `allowed_origins` (see `origin_of`) are reachable
    wherever they resolve, over http or https: the operator named them."""

    production: bool
    allowed_origins: frozenset[str] = frozenset()

    def configured(self, url: str) -> bool:
        return origin_of(url) in self.allowed_origins

    def check_scheme(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AddressRefused("not an absolute http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise AddressRefused("URLs with credentials are not fetched")
        if parts.scheme == "http" and self.production and not self.configured(url):
            raise AddressRefused("plain http is fetched only from configured origins")

    def refusal(self, url: str, ip: IP) -> str | None:
        """Why `url`, resolved to `ip`, must not be fetched (None: it may)."""
        if self.configured(url):
            return None
        reason = internal_reason(ip)
        if reason is None:
            # Plain http to a public address: never in production (check_scheme), and in
            # development only where it cannot leave the machine.
            if urlsplit(url).scheme == "http":
                return "plain http is fetched only from loopback or configured origins"
            return None
        if not self.production and ip.is_loopback:
            return None
        return f"{reason} is not fetched"

    def addresses(self, url: str) -> list[IP]:
        """The host's addresses, every one checked: a name that resolves to any forbidden
        address is refused as a whole (a round-robin answer cannot smuggle one in)."""
        self.check_scheme(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            literal: IP | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [literal]
        else:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                raise Unreachable(f"{host}: the name does not resolve") from None
            found = []
            for info in infos:
                ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                if ip not in found:
                    found.append(ip)
        if not found:
            raise Unreachable(f"{host}: the name does not resolve")
        for ip in found:
            reason = self.refusal(url, ip)
            if reason is not None:
                raise AddressRefused(f"{host}: {reason}")
        return found


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str  # without parameters
    body: bytes
    location: str | None = None  # of a redirect, which is not followed


_slots = threading.BoundedSemaphore(MAX_CONCURRENT)
_unreachable: dict[tuple[str, int], float] = {}
_unreachable_lock = threading.Lock()
_in_flight: dict[tuple[str, int], int] = {}


def _claim(ip: IP, port: int) -> bool:
    """Count a fetch to this address; False when PER_ADDRESS are already under way."""
    key = (str(ip), port)
    with _unreachable_lock:
        if _in_flight.get(key, 0) >= PER_ADDRESS:
            return False
        _in_flight[key] = _in_flight.get(key, 0) + 1
        return True


def _release(ip: IP, port: int) -> None:
    key = (str(ip), port)
    with _unreachable_lock:
        left = _in_flight.get(key, 1) - 1
        if left > 0:
            _in_flight[key] = left
        else:
            _in_flight.pop(key, None)


def _recently_unreachable(ip: IP, port: int) -> bool:
    with _unreachable_lock:
        until = _unreachable.get((str(ip), port))
    return until is not None and until > time.monotonic()


def _mark_unreachable(ip: IP, port: int) -> None:
    with _unreachable_lock:
        if len(_unreachable) >= _UNREACHABLE_MAX:
            _unreachable.clear()
        _unreachable[(str(ip), port)] = time.monotonic() + UNREACHABLE_TTL_S


def forget_unreachable() -> None:
    """Forget every address remembered as unreachable (tests, and an operator's restart)."""
    with _unreachable_lock:
        _unreachable.clear()


class Outbound:
    """Fetches under an `AddressPolicy`, within the process's shared bounds."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        deadline: float = DEADLINE_S,
    ) -> None:
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.deadline = deadline

    def get(self, url: str, *, accept: str = "*/*", max_body: int = MAX_BODY) -> Response:
        return self.request("GET", url, headers={"Accept": accept}, max_body=max_body)

    def post_form(
        self, url: str, form: Mapping[str, str], *, accept: str = "*/*", max_body: int = MAX_BODY
    ) -> Response:
        return self.request(
            "POST",
            url,
            body=urlencode(form).encode("ascii"),
            headers={"Accept": accept, "Content-Type": "application/x-www-form-urlencoded"},
            max_body=max_body,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_body: int = MAX_BODY,
    ) -> Response:
        """One request, no redirects followed. Raises an OutboundError subclass when the URL
        is refused, no slot is free, the host does not answer, or the answer is too large."""
        if not _slots.acquire(timeout=SLOT_WAIT_S):
            raise Busy("too many outbound requests at once")
        try:
            return self._request(method, url, body, request_ids.outgoing(headers), max_body)
        finally:
            _slots.release()

    def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_body: int
    ) -> Response:
        deadline = time.monotonic() + self.deadline
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        configured = self.policy.configured(url)
        addresses = self.policy.addresses(url)
        live = [ip for ip in addresses if configured or not _recently_unreachable(ip, port)]
        if not live:
            raise Unreachable(f"{parts.hostname}: did not answer recently")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        last: Exception | None = None
        for ip in live:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not configured and not _claim(ip, port):
                raise Busy(f"{parts.hostname}: too many requests to one address at once")
            try:
                conn = _pinned(parts.scheme, parts.hostname or "", port, ip, remaining)
                conn.timeout = min(self.connect_timeout, remaining)
                try:
                    conn.connect()
                except OSError as exc:  # ssl.SSLError included
                    conn.close()
                    if isinstance(exc, TimeoutError) and not configured:
                        _mark_unreachable(ip, port)  # a refusal costs nothing; a silence does
                    last = exc
                    continue
                try:
                    return _exchange(conn, method, target, body, headers, max_body, deadline)
                except OutboundError:
                    raise
                except TimeoutError as exc:
                    if not configured:
                        _mark_unreachable(ip, port)
                    raise Unreachable(f"{parts.hostname}: no answer in time") from exc
                except (OSError, http.client.HTTPException) as exc:
                    raise Unreachable(f"{parts.hostname}: {type(exc).__name__}") from None
                finally:
                    conn.close()
            finally:
                if not configured:
                    _release(ip, port)
        name = type(last).__name__ if last is not None else "deadline"
        raise Unreachable(f"{parts.hostname}: {name}")


def _pinned(
    scheme: str, host: str, port: int, ip: IP, timeout: float
) -> http.client.HTTPConnection:
    """A connection to `ip` that speaks to `host` (Host header, TLS server name and
    certificate check), so the address checked is the address used."""
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def connect_to_checked(
        _address: tuple[str, int], timeout: float | None = None, source: object = None
    ) -> socket.socket:
        return socket.create_connection((str(ip), port), timeout)

    # http.client's own hook (undeclared): connect to the checked address, keep the host name
    conn._create_connection = connect_to_checked  # type: ignore[attr-defined]  # see above
    return conn


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
    max_body: int,
    deadline: float,
) -> Response:
    def budget() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        return left

    headers.setdefault("Connection", "close")
    headers.setdefault("User-Agent", "phr-platform")
    conn.sock.settimeout(budget())
    conn.request(method, target, body=body, headers=headers)
    resp = conn.getresponse()
    chunks: list[bytes] = []
    size = 0
    while True:
        if conn.sock is not None:
            conn.sock.settimeout(budget())
        chunk = resp.read1(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > max_body:
            raise TooLarge(f"the answer is larger than {max_body} bytes")
        chunks.append(chunk)
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
    location = resp.getheader("Location") if 300 <= resp.status < 400 else None
    return Response(resp.status, ctype, b"".join(chunks), location)


def configured_origins(urls: Iterable[str]) -> frozenset[str]:
    return frozenset(origin_of(u) for u in urls if u)


def for_settings(settings: Settings, *, deadline: float = DEADLINE_S) -> Outbound:
    """The fetcher a service uses: production per PHR_ENV, its configured service URLs
    (PHR_ISSUER, PHR_FHIR_URL, …) reachable wherever they resolve."""
    policy = AddressPolicy(settings.production, configured_origins(settings.urls.values()))
    return Outbound(policy, deadline=deadline)


_default: Outbound | None = None
_default_lock = threading.Lock()


def default() -> Outbound:
    """For code that has no settings at hand: the process environment's (PHR_ENV, the service
    URLs), read once."""
    global _default
    with _default_lock:
        if _default is None:
            _default = for_settings(load_settings())
        return _default
