"""Client authentication at the token, introspection and revocation endpoints (RFC 6749 2.3,
OIDC Core 9: client_secret_basic, client_secret_post, private_key_jwt; `none` for public
clients, which must then prove possession some other way: PKCE, DPoP)."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime
from urllib.parse import unquote_plus, urlsplit

from flask import request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.datastructures import Headers, MultiDict

from idp.clients import ClientView, get_client, hash_secret, secret_needs_rehash
from idp.context import idp
from idp.errors import OAuthError, invalid_client, invalid_request
from idp.limits import ClientAttempts, source_address
from idp.models import Client, DpopJti
from idp.tokens import sha256_hex
from phr_core import outbound
from phr_core.config import is_loopback_host
from phr_core.tokens import InvalidToken, JwksCache, b64url_json

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("ES256", "RS256", "PS256")


def _basic(headers: Headers) -> tuple[str, str] | None:
    auth = headers.get("Authorization", "")
    if not auth.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(auth[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid_client("malformed Basic credentials") from None
    cid, sep, secret = raw.partition(":")
    if not sep:
        raise invalid_client("malformed Basic credentials")
    return unquote_plus(cid), unquote_plus(secret)


def authenticate(
    s: Session,
    form: MultiDict,
    headers: Headers,
    audiences: list[str],
    *,
    allow_public: bool,
    attempts: ClientAttempts | None = None,
) -> ClientView:
    """Find the client and check its credentials with the method it registered; with
    `attempts`, refuse first a source or claimed client that failed too often, then an
    authenticated client that did (idp.limits)."""
    if attempts is not None:
        attempts.check_claimed(s)
    client = _authenticate(s, form, headers, audiences, allow_public=allow_public)
    if attempts is not None:
        attempts.check_authenticated(s, client.client_id, client.is_public)
    return client


def _authenticate(
    s: Session, form: MultiDict, headers: Headers, audiences: list[str], *, allow_public: bool
) -> ClientView:
    basic = _basic(headers)
    assertion_type = form.get("client_assertion_type")
    used = [
        m
        for m, present in (
            ("client_secret_basic", basic is not None),
            ("client_secret_post", "client_secret" in form),
            ("private_key_jwt", assertion_type is not None),
        )
        if present
    ]
    if len(used) > 1:
        raise invalid_request("use exactly one client authentication method")

    if basic:
        return _secret(s, basic[0], basic[1], "client_secret_basic")
    if used == ["client_secret_post"]:
        return _secret(
            s, form.get("client_id", ""), form.get("client_secret", ""), "client_secret_post"
        )
    if used == ["private_key_jwt"]:
        return _private_key_jwt(s, form, audiences)

    client = get_client(s, form.get("client_id", ""))
    if client is None:
        raise invalid_client("unknown client")
    if not client.is_public or not allow_public:
        raise invalid_client("client authentication required")
    return client


def _secret(s: Session, client_id: str, secret: str, method: str) -> ClientView:
    client = get_client(s, client_id)
    if client is None or client.auth_method != method:
        raise invalid_client()
    if not client.check_secret(secret):
        raise invalid_client()
    if client.secret_hash and secret_needs_rehash(client.secret_hash):
        row = s.get(Client, client.client_id)  # an older hash: replace it now we know the secret
        if row is not None:
            row.secret_hash = hash_secret(secret)
    return client


def _private_key_jwt(s: Session, form: MultiDict, audiences: list[str]) -> ClientView:
    if form.get("client_assertion_type") != JWT_BEARER:
        raise invalid_client("unsupported client_assertion_type")
    assertion = form.get("client_assertion", "")
    header, payload = _segments(assertion)
    if header.get("alg") not in ASSERTION_ALGS:
        raise invalid_client("client assertion algorithm not accepted")
    client_id = payload.get("iss")
    client = get_client(s, client_id) if isinstance(client_id, str) else None
    if client is None or client.auth_method != "private_key_jwt":
        raise invalid_client()
    keys = _client_keys(client, header.get("kid"))
    try:
        claims = jwt.decode(assertion, keys, algorithms=list(ASSERTION_ALGS)).claims
    except (JoseError, ValueError):
        raise invalid_client("client assertion signature is invalid") from None
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    now = time.time()
    if claims.get("sub") != client_id:
        raise invalid_client("client assertion sub must be the client_id")
    if not set(auds) & set(audiences):
        raise invalid_client("client assertion audience is not this server")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now - 30:
        raise invalid_client("client assertion expired")
    if claims["exp"] > now + 600:
        raise invalid_client("client assertion lives too long (at most 10 minutes)")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise invalid_client("client assertion needs a jti")
    if not _first_use(client.client_id, claims["jti"], claims["exp"]):
        raise invalid_client("client assertion was already used (replayed jti)")
    return client


# jwks_uri → its keys, fetched on first use, kept JWKS_TTL seconds and fetched again at once
# (at most every JWKS_MIN_REFETCH seconds) when an assertion names a key id not among them: a
# client that rotates its key publishes the new one and uses it, nothing to re-register.
JWKS_TTL = 300.0
JWKS_MIN_REFETCH = 5.0
_jwks_caches: dict[str, JwksCache] = {}
_jwks_lock = threading.Lock()


def _client_keys(client: ClientView, kid: object) -> KeySet:
    """The client's registered public keys: inline `jwks`, else those its `jwks_uri` serves
    (https, or http on loopback for development)."""
    jwks = client.meta.get("jwks")
    if jwks:
        try:
            return KeySet.import_key_set(jwks)
        except (JoseError, ValueError, TypeError):
            raise invalid_client("client's registered jwks is not a JWK Set") from None
    uri = client.meta.get("jwks_uri")
    if not isinstance(uri, str) or not uri:
        raise invalid_client("client has no registered keys")
    parts = urlsplit(uri)
    if not (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))
    ):
        raise invalid_client("client's jwks_uri must use https")
    with _jwks_lock:
        cache = _jwks_caches.get(uri)
        if cache is None:
            if len(_jwks_caches) >= 1000:  # bounded: one entry per registered jwks_uri
                _jwks_caches.clear()
            fetch = outbound.for_settings(idp().settings)  # no internal address in production
            cache = _jwks_caches[uri] = JwksCache(uri, JWKS_TTL, JWKS_MIN_REFETCH, outbound=fetch)
    try:
        return cache.keys(kid if isinstance(kid, str) else None)
    except (InvalidToken, JoseError, KeyError, TypeError):
        raise invalid_client("client's jwks_uri could not be fetched as a JWK Set") from None


def _first_use(client_id: str, jti: str, exp: int) -> bool:
    """Remember an assertion's jti until it expires (RFC 7523 3, item 7), in the database so
    every worker sees it; False when it was seen before. Kept with the DPoP proof ids (one
    purge), under a hash namespaced by client so the two kinds cannot collide."""
    try:
        with idp().db.session() as s:
            s.add(
                DpopJti(
                    jti_hash=sha256_hex(f"client-assertion\0{client_id}\0{jti}"),
                    expires_at=datetime.fromtimestamp(exp + 60, UTC),
                )
            )
    except IntegrityError:
        return False
    return True


def _segments(token: str) -> tuple[dict, dict]:
    """Header and payload of a JWS, unverified: only to find whose key verifies it."""
    try:
        head, body = token.split(".")[:2]
        return b64url_json(head), b64url_json(body)
    except ValueError:
        raise invalid_client("malformed client assertion") from None


def claimed_client_id() -> str | None:
    """The client id a request claims, before it is authenticated (for attempt limits)."""
    try:
        basic = _basic(request.headers)
    except OAuthError:
        basic = None
    if basic:
        return basic[0]
    if request.form.get("client_assertion"):
        try:
            return _segments(request.form["client_assertion"])[1].get("iss")
        except OAuthError:
            return None
    return request.form.get("client_id") or None


def attempts() -> ClientAttempts:
    """This request's attempt keys at a client endpoint (idp.limits)."""
    ctx = idp()
    return ClientAttempts(ctx.db, source_address(request, ctx.trusted_proxies), claimed_client_id())


def require_confidential(client: ClientView) -> None:
    if client.is_public:
        raise OAuthError("unauthorized_client", "a public client cannot use this grant")
