"""The portal as an OAuth 2.0 client of an IdP (the home IdP or a city IdP of the federation):
its discovery document and keys, and its token and revocation endpoints.

The token and revocation requests are Authlib's (`OAuth2Session`: the grant's form, the token
response and its RFC 6749 errors, RFC 7009 revocation). Two pieces stay ours:

* the transport: every request to an IdP goes to a URL that a discovery document names, which
  a federation member writes, so it goes through phr_core.outbound (no loopback or private
  address in production, a deadline, no redirect followed); Authlib's session sends through
  `OutboundAdapter`, and the discovery document and keys are fetched (and kept a few minutes)
  by `fetch_json`, also through it;
* client authentication: at the home IdP client_secret_basic with the id and secret
  form-urlencoded before Base64 (RFC 6749 §2.3.1; Authlib's encoder leaves them as they are),
  at a city IdP private_key_jwt with the portal's federation key (portal.providers).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.parse
from typing import Any

import requests
from authlib.common.urls import add_params_to_qs
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from phr_core import outbound
from phr_core.webapp import settings
from portal import providers
from portal.session import client_id, signed_in_issuer

log = logging.getLogger(__name__)

TIMEOUT_S = 5
METADATA_TTL_S = 300


class SignInError(Exception):
    """A sign-in that cannot go on; `key` names the message the person is shown."""

    def __init__(self, key: str, status: int = 400) -> None:
        super().__init__(key)
        self.key = key
        self.status = status


def fetcher() -> outbound.Outbound:
    """Every request the portal makes to an IdP goes through here: the URLs come from an
    IdP's discovery document, which a federation member writes, not from our configuration."""
    return outbound.for_settings(settings(), deadline=TIMEOUT_S)


# --- The IdP's metadata and keys, fetched over HTTP and kept for a few minutes ------------------

_cache: dict[str, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def fetch_json(url: str, *, fresh: bool = False) -> Any:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(url)
    if hit is not None and not fresh and now - hit[0] < METADATA_TTL_S:
        return hit[1]
    try:
        resp = fetcher().get(url, accept="application/json")
        if resp.status != 200:
            raise ValueError(f"status {resp.status}")
        doc = json.loads(resp.body)
    except (OSError, ValueError) as exc:
        log.warning("IdP metadata unavailable (%s)", type(exc).__name__)
        raise SignInError("signin_unavailable", 503) from None
    with _cache_lock:
        _cache[url] = (now, doc)
    return doc


def forget_metadata() -> None:
    with _cache_lock:
        _cache.clear()


def provider(issuer: str | None = None) -> dict[str, Any]:
    """An IdP's discovery document (by default the one the session signed in at)."""
    issuer = issuer or signed_in_issuer()
    meta = fetch_json(issuer + "/.well-known/openid-configuration")
    if not isinstance(meta, dict) or meta.get("issuer") != issuer:
        raise SignInError("signin_unavailable", 503)
    return meta


def key_set(meta: dict[str, Any], *, fresh: bool = False) -> KeySet:
    try:
        return KeySet.import_key_set(fetch_json(meta["jwks_uri"], fresh=fresh))
    except (KeyError, TypeError, ValueError, JoseError):
        raise SignInError("signin_unavailable", 503) from None


# --- Authlib's session over the bounded fetcher ---------------------------------------------------


class OutboundAdapter(BaseAdapter):
    """A requests transport that sends through phr_core.outbound (see the module docstring)."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """One request through the fetcher (its deadline and address policy, not `timeout`,
        `verify` or `proxies`, which Authlib leaves at their defaults)."""
        body = request.body.encode() if isinstance(request.body, str) else request.body
        if body is not None and not isinstance(body, bytes):
            raise ValueError("a streamed body")  # Authlib sends forms, never streams
        headers = {k: v if isinstance(v, str) else v.decode() for k, v in request.headers.items()}
        answer = fetcher().request(
            request.method or "GET", request.url or "", body=body, headers=headers
        )
        resp = requests.Response()
        resp.status_code = answer.status
        resp._content = answer.body  # the body, already read within the fetcher's size cap
        resp.headers = CaseInsensitiveDict({"Content-Type": answer.content_type})
        resp.url, resp.request, resp.encoding = request.url or "", request, "utf-8"
        return resp

    def close(self) -> None:
        pass


def _secret_basic(client: Any, method: str, uri: str, headers: dict[str, str], body: str) -> Any:
    """client_secret_basic as RFC 6749 §2.3.1 says: both parts form-urlencoded before Base64."""
    user = urllib.parse.quote(client.client_id, safe="")
    password = urllib.parse.quote(client.client_secret, safe="")
    headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return uri, headers, body


def _private_key_jwt(client: Any, method: str, uri: str, headers: dict[str, str], body: str) -> Any:
    """RFC 7523 client authentication with the portal's federation key (portal.providers)."""
    return uri, headers, add_params_to_qs(body, providers.client_assertion(client.client_id, uri))


def auth_method(issuer: str) -> str:
    """The name `session_at` registers the portal's client authentication at `issuer` under."""
    return "portal_secret_basic" if issuer == settings().issuer else "portal_private_key_jwt"


def session_at(issuer: str) -> OAuth2Session:
    """An Authlib session authenticating the portal at `issuer`: client_secret_basic at the home
    IdP; private_key_jwt at a city IdP, which holds no secret of ours."""
    home = issuer == settings().issuer
    method = auth_method(issuer)
    sess = OAuth2Session(
        client_id(),
        settings().secret("PHR_CONSENT_CLIENT_SECRET") if home else None,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
    )
    sess.register_client_auth_method((method, _secret_basic if home else _private_key_jwt))
    sess.max_redirects = 0  # the fetcher follows none; neither does the session
    for scheme in ("http://", "https://"):
        sess.mount(scheme, OutboundAdapter())
    return sess


def token_request(issuer: str, url: str, grant_type: str, **params: str) -> dict[str, Any]:
    """A token endpoint request (`grant_type` with `params`) at `issuer`'s `url`. A refused one
    is SignInError("invalid_target") when the IdP knows no such PHR server (RFC 8707), else
    "signin_failed"; an IdP that cannot be reached is a 503."""
    sess = session_at(issuer)
    try:
        with sess:
            token = sess.fetch_token(url, grant_type=grant_type, **params)
    except OAuthError as exc:
        log.warning("IdP token endpoint refused the request (%s)", exc.error)
        key = "invalid_target" if exc.error == "invalid_target" else "signin_failed"
        raise SignInError(key) from None
    except (requests.HTTPError, requests.TooManyRedirects, ValueError) as exc:
        log.warning("IdP token endpoint answered an error (%s)", type(exc).__name__)
        raise SignInError("signin_failed") from None
    except OSError as exc:
        log.warning("IdP token endpoint unreachable (%s)", type(exc).__name__)
        raise SignInError("signin_unavailable", 503) from None
    if not isinstance(token, dict):
        raise SignInError("signin_failed")
    return dict(token)


def revoke_refresh_token(issuer: str, refresh_token: str) -> None:
    """Revoke a refresh token (and so its family) at the IdP that issued it (RFC 7009), best
    effort: a sign-out goes on either way."""
    try:
        end = provider(issuer).get("revocation_endpoint")
        if end:
            with session_at(issuer) as sess:
                sess.revoke_token(end, refresh_token, token_type_hint="refresh_token")  # noqa: S106 (a hint)
    except (OSError, SignInError) as exc:
        log.warning("refresh token not revoked at the IdP (%s)", type(exc).__name__)


class EraseRefused(Exception):
    """The IdP could not be asked to forget the person, or refused: try again."""


def erase_person(issuer: str, id_token: str) -> bool:
    """Ask the IdP the person signed in at to forget them (idp/endpoints/person_erase.py),
    authenticated as at its token endpoint, naming the person by their ID token. False when
    that IdP offers no such endpoint (a city IdP of the federation: the person's account there
    is the city's) or when it answers `{"erased": false}` (nobody to erase there: already gone,
    or the sign-in the ID token names has ended); EraseRefused when the request fails."""
    try:
        end = provider(issuer).get("phr_person_erase_endpoint")
    except SignInError:
        raise EraseRefused("IdP metadata unavailable") from None
    if not isinstance(end, str):
        return False
    try:
        with session_at(issuer) as sess:
            auth = sess.client_auth(auth_method(issuer))
            resp = sess.post(end, data={"id_token_hint": id_token}, auth=auth)
    except (OSError, requests.RequestException) as exc:
        log.warning("IdP unreachable for the person's erasure (%s)", type(exc).__name__)
        raise EraseRefused("IdP unreachable") from None
    if resp.status_code != 200:
        log.warning("IdP refused the person's erasure (%s)", resp.status_code)
        raise EraseRefused(f"IdP answered {resp.status_code}")
    try:
        answer = resp.json()
    except ValueError:
        raise EraseRefused("IdP answered no JSON") from None
    return isinstance(answer, dict) and answer.get("erased") is True
