"""OAuth clients: lookup, secrets, redirect URIs, sectors and static registration.

Client metadata follows RFC 7591 / OIDC Registration; our own fields start with `phr_`:
`phr_sector` (a named sector, static clients only), `phr_municipality` (connectors),
`phr_required_acr` (the minimum assurance a client demands), `phr_first_party` (the portal:
no consent screen, no grant; its access tokens say so), and `purpose` / `purpose#en`,
the declared purpose shown on the consent screen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from idp import client_cache, scopes
from idp.errors import shown
from idp.models import Client
from idp.scopes import is_first_party_scope
from idp.subjects import sector_of_redirect_uris
from phr_core.config import ConfigError, is_loopback_host

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


# Client secrets are stored with scrypt (memory-hard, RFC 7914), its parameters in the stored
# value: `scrypt$<log2 N>$<r>$<p>$<salt>$<key>`. Rows from before (a bare SHA-256 hex digest)
# still verify and are re-hashed on the next successful authentication (idp.client_auth).
SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 14, 8, 1  # 16 MiB, tens of milliseconds
# A secret that verified once is not hashed again by this process (keyed by a process-random
# key, so the cache holds nothing a database dump could be compared with).
_verified: dict[bytes, None] = {}
_verified_key = secrets.token_bytes(32)
_verified_lock = threading.Lock()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=1 << log_n, r=r, p=p, dklen=32, maxmem=128 << 20
    )


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(secret, salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def secret_needs_rehash(stored: str) -> bool:
    """True for a hash in an older scheme (plain SHA-256) or with weaker parameters."""
    return not stored.startswith(f"scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}$")


def verify_secret(stored: str, secret: str) -> bool:
    """Does `secret` match the stored hash (either scheme)? Constant time in the comparison."""
    memo = hmac.new(_verified_key, f"{stored}\0{secret}".encode(), hashlib.sha256).digest()
    if memo in _verified:
        return True
    if stored.startswith("scrypt$"):
        try:
            _, log_n, r, p, salt, key = stored.split("$")
            ok = hmac.compare_digest(
                _unb64(key), _scrypt(secret, _unb64(salt), *map(int, (log_n, r, p)))
            )
        except (ValueError, TypeError):
            return False
    else:  # legacy: SHA-256 hex
        ok = hmac.compare_digest(stored, hashlib.sha256(secret.encode()).hexdigest())
    if ok:
        with _verified_lock:
            if len(_verified) >= 4096:
                _verified.clear()
            _verified[memo] = None
    return ok


@dataclass(frozen=True)
class ClientView:
    """What the protocol code needs to know about a client, read once per request."""

    client_id: str
    name: str
    sector: str
    meta: dict[str, Any]
    secret_hash: str | None
    sector_locked: bool = False  # as read (idp.client_cache: may be a few seconds old)

    @classmethod
    def of(cls, row: Client) -> ClientView:
        return cls(
            row.client_id,
            row.client_name,
            row.sector,
            dict(row.client_metadata),
            row.secret_hash,
            bool(row.sector_locked),
        )

    @property
    def auth_method(self) -> str:
        return self.meta.get("token_endpoint_auth_method", "client_secret_basic")

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.meta.get("redirect_uris", []))

    @property
    def grant_types(self) -> list[str]:
        return list(self.meta.get("grant_types", ["authorization_code"]))

    @property
    def allowed_scopes(self) -> set[str]:
        return set(str(self.meta.get("scope", "openid")).split())

    @property
    def municipality(self) -> str | None:
        return self.meta.get("phr_municipality")

    @property
    def required_acr(self) -> str | None:
        return self.meta.get("phr_required_acr")

    @property
    def first_party(self) -> bool:
        """The platform's own portal: no consent screen, no grant, and its access tokens for
        the PHR server carry `phr_first_party` (read the person's own and children's records).
        Only static clients (registration refuses the field) in the PHR sector whose scopes are
        all sign-in or `user/…` read scopes (idp.scopes.is_first_party_scope)."""
        return (
            bool(self.meta.get("phr_first_party"))
            and self.sector == "phr"
            and all(is_first_party_scope(sc) for sc in self.allowed_scopes)
        )

    @property
    def id_token_alg(self) -> str:
        return self.meta.get("id_token_signed_response_alg", "ES256")

    def check_secret(self, secret: str) -> bool:
        if not self.secret_hash:
            return False
        return verify_secret(self.secret_hash, secret)

    def purpose(self, lang: str) -> str:
        if lang == "en":
            return self.meta.get("purpose#en") or self.meta.get("purpose", "")
        return self.meta.get("purpose", "") or self.meta.get("purpose#en", "")


def get_client(s: Session, client_id: str) -> ClientView | None:
    """The client as registered, from the process cache (idp.client_cache) when it is fresh."""
    if not client_id:
        return None
    found: _Found | None = client_cache.cached(s, client_id, lambda: _load(s, client_id))
    if found is None:
        return None
    if found.federated and _chain_expired(found.view.meta):
        return None  # automatic registration (idp/federation.py) ends with the trust chain
    return found.view


@dataclass(frozen=True)
class _Found:
    view: ClientView
    federated: bool


def _load(s: Session, client_id: str) -> _Found | None:
    row = s.get(Client, client_id)
    if row is None:
        return None
    return _Found(ClientView.of(row), row.registration == "federation")


def _chain_expired(meta: dict[str, Any]) -> bool:
    exp = meta.get("phr_federation_exp")
    return not isinstance(exp, int) or exp <= time.time()


# Metadata people see on the consent screen and in the portal: links must be web pages, and
# names may not carry control or bidirectional formatting characters (U+202E turns
# "gpa.evil" into "live.apg" on screen). Localized variants (`client_name#en`) alike.
DISPLAY_URIS = ("logo_uri", "policy_uri", "tos_uri", "client_uri")
DISPLAY_TEXTS = ("client_name", "purpose")
URI_LISTS = ("redirect_uris", "post_logout_redirect_uris")
MAX_TEXT = 200
MAX_URI = 2000
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}


def validate_metadata(meta: dict[str, Any]) -> None:
    """Reject metadata we cannot serve safely (raises ValueError naming the offending value).
    Used for every kind of registration: the clients file, RFC 7591, OpenID Federation."""
    method = meta.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ValueError(f"token_endpoint_auth_method {shown(method)} is not supported")
    grants = meta.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list):
        raise ValueError("grant_types must be a list")
    for g in grants:
        if g not in GRANT_TYPES:
            raise ValueError(f"grant type {shown(g)} is not supported")
    for key in URI_LISTS:
        if not isinstance(meta.get(key, []), list):
            raise ValueError(f"{key} must be a list of URIs")
    uris = meta.get("redirect_uris", [])
    if "authorization_code" in grants and not uris:
        raise ValueError("redirect_uris are required for the authorization code grant")
    for key in URI_LISTS:
        for uri in meta.get(key, []):
            reason = redirect_uri_problem(uri)
            if reason:
                raise ValueError(f"{key[:-1]} {shown(uri)} is not acceptable: {reason}")
    scope = meta.get("scope", "openid")
    if not isinstance(scope, str):
        raise ValueError("scope must be a string of space-separated scopes")
    for sc in scope.split():
        if not scopes.is_known(sc) and sc not in scopes.IGNORED_SCOPES:
            raise ValueError(f"scope {shown(sc)} is not a scope this server knows")
    for key, value in meta.items():
        base = key.split("#", 1)[0]
        if base in DISPLAY_URIS:
            reason = display_uri_problem(value)
            if reason:
                raise ValueError(f"{key} must be an https URL ({reason}; got {shown(value)})")
        elif base in DISPLAY_TEXTS:
            reason = display_text_problem(value)
            if reason:
                raise ValueError(f"{key} {reason} (got {shown(value)})")
    if method == "private_key_jwt" and not (meta.get("jwks") or meta.get("jwks_uri")):
        raise ValueError("private_key_jwt needs jwks or jwks_uri")
    alg = meta.get("id_token_signed_response_alg", "ES256")
    if alg not in ("ES256", "RS256"):
        raise ValueError(f"id_token_signed_response_alg {shown(alg)} is not supported")
    if method == "none" and "client_credentials" in grants:
        raise ValueError("a public client cannot use the client credentials grant")


def acceptable_redirect_uri(uri: str) -> bool:
    return redirect_uri_problem(uri) is None


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def _uri_shape_problem(uri: object) -> str | None:
    """What makes a value no absolute URI we would send a browser to, or None."""
    if not isinstance(uri, str) or not uri:
        return "not a string"
    if len(uri) > MAX_URI:
        return f"longer than {MAX_URI} characters"
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F or ord(c) in _BIDI for c in uri):
        return "spaces or control characters"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (raises ValueError for an invalid port)
    except ValueError:
        return "not a valid URI"
    if not _SCHEME.match(parts.scheme or ""):
        return "no valid scheme"
    if parts.fragment or uri.endswith("#"):
        return "a fragment"
    if parts.username is not None or parts.password is not None:
        return "user information in the URI"
    return None


def _host_problem(host: str | None) -> str | None:
    if not host:
        return "no host"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    return None if _HOST.match(host) else "not a valid host name"


def redirect_uri_problem(uri: object) -> str | None:
    """Why `uri` cannot be a redirect URI, or None: https with a valid host, http only on
    loopback, or a native app's private-use scheme (RFC 8252 7.1, a reverse domain name)."""
    problem = _uri_shape_problem(uri)
    if problem:
        return problem
    parts = urlsplit(str(uri))
    if parts.scheme == "https":
        return _host_problem(parts.hostname)
    if parts.scheme == "http":
        return None if is_loopback_host(parts.hostname) else "http only on loopback; use https"
    if "." not in parts.scheme:
        return f"scheme {parts.scheme}: is neither https nor a reverse-domain app scheme"
    return None


def display_uri_problem(uri: object) -> str | None:
    """Why a logo, policy, terms or home page URI is no web page link, or None (http only on
    loopback, for development)."""
    problem = _uri_shape_problem(uri)
    if problem:
        return problem
    parts = urlsplit(str(uri))
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return None
    if parts.scheme != "https":
        return f"scheme {parts.scheme}: is not https"
    return _host_problem(parts.hostname)


def display_text_problem(text: object) -> str | None:
    """Why a name shown to people is unfit, or None."""
    if not isinstance(text, str):
        return "must be a string"
    if len(text) > MAX_TEXT:
        return f"is longer than {MAX_TEXT} characters"
    for c in text:
        if ord(c) in _BIDI or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp"):
            return f"contains the control or bidirectional character U+{ord(c):04X}"
    return None


def sector_for(meta: dict[str, Any]) -> str:
    """The pairwise sector of a client (see idp.subjects)."""
    if meta.get("phr_sector"):
        return str(meta["phr_sector"])
    if meta.get("sector_identifier_uri"):
        return urlsplit(meta["sector_identifier_uri"]).hostname or ""
    if meta.get("redirect_uris"):
        return sector_of_redirect_uris(meta["redirect_uris"])
    return "client:" + str(meta.get("client_id", ""))


def upsert_static(s: Session, meta: dict[str, Any], secret: str | None) -> Client:
    """Register or update a client from configuration (static registration)."""
    meta = dict(meta)
    client_id = meta.pop("client_id")
    meta.pop("client_secret", None)
    validate_metadata(meta)
    row = s.get(Client, client_id)
    sector = sector_for({**meta, "client_id": client_id})
    if row is None:
        row = Client(client_id=client_id, registration="static", sector=sector)
        s.add(row)
    elif row.sector_locked and row.sector != sector:
        raise ValueError(f"client {client_id}: the sector cannot change after the first sign-in")
    row.sector = sector
    row.client_name = meta.get("client_name", client_id)
    row.client_metadata = meta
    row.secret_hash = hash_secret(secret) if secret else None
    return row


MIN_SECRET_BITS = 256


def weak_secret_reason(secret: str) -> str | None:
    """Why a static client secret is too weak for production, or None. The estimate is the
    length times the bits of the character classes used (a 43-character `token_urlsafe(32)`
    or a 64-character hex string pass; a password or a repeated pattern does not)."""
    classes = [
        (str.islower, 26), (str.isupper, 26), (str.isdigit, 10),
        (lambda c: not c.isalnum(), 33),
    ]  # fmt: skip
    alphabet = sum(size for test, size in classes if any(test(c) for c in secret))
    bits = len(secret) * math.log2(alphabet) if alphabet > 1 else 0.0
    if bits < MIN_SECRET_BITS or len(set(secret)) < 16:
        return (
            f"a client secret of {len(secret)} characters is too weak for production: use at "
            "least 32 random bytes, e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'"
        )
    return None


def load_clients_file(s: Session, path: Path, *, production: bool = False) -> int:
    """PHR_IDP_CLIENTS_FILE: a JSON list of client metadata objects, each with `client_id` and,
    for confidential clients, `client_secret` (in production at least 32 random bytes)."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"PHR_IDP_CLIENTS_FILE {path}: {exc}") from None
    if not isinstance(entries, list):
        raise ValueError(f"PHR_IDP_CLIENTS_FILE {path}: expected a JSON list of clients")
    for meta in entries:
        secret = meta.get("client_secret") if isinstance(meta, dict) else None
        if production and isinstance(secret, str):
            reason = weak_secret_reason(secret)
            if reason:
                raise ConfigError(  # a start-up error, like any other unfit production setting
                    f"PHR_IDP_CLIENTS_FILE {path}: client {meta.get('client_id')!r}: {reason}"
                )
        upsert_static(s, meta, secret)
    return len(entries)
