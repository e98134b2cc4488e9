"""The IdP in the federation: its OpenID provider metadata for its entity configuration, and
automatic client registration (OpenID Federation 1.0 section 12.1): an app whose `client_id`
is its entity id, unknown here, is registered from its trust chain when it first sends a
request object signed with a key of its (policy-applied) metadata."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from sqlalchemy.orm import Session

from federation import keys
from federation.entity.fetch import UrlFetcher, acceptable_entity_id
from federation.entity.trust_chain import Resolver, TrustChain
from federation.errors import FederationError
from federation.trust_marks import CERTIFIED_PHR_APP
from idp.clients import sector_for, validate_metadata
from idp.context import idp
from idp.endpoints import discovery
from idp.models import Client, DpopJti
from idp.tokens import sha256_hex
from phr_core.config import Settings


def openid_provider_metadata(settings: Settings) -> dict[str, dict[str, Any]]:
    md = discovery.metadata()
    md.update(
        # Request objects are accepted from automatically registered apps only (the plain
        # discovery document, for everyone else, keeps saying request_parameter_supported false).
        # Section 5.2.1: keys by value, so a verifier that trusts this configuration through
        # its chain needs no second, unauthenticated fetch of jwks_uri.
        jwks=idp().keys.jwks(),
        client_registration_types_supported=["automatic"],
        request_parameter_supported=True,
        request_object_signing_alg_values_supported=["ES256", "RS256"],
        request_authentication_methods_supported={
            "authorization_endpoint": ["request_object"],
            "pushed_authorization_request_endpoint": ["private_key_jwt"],
        },
    )
    return {"openid_provider": md}


# --- automatic registration (section 12.1) ---------------------------------------------------

REGISTRATION = "federation"  # Client.registration of automatically registered apps
REQUEST_OBJECT_ALGS = ("ES256", "RS256", "PS256")
MAX_REQUEST_OBJECT_LIFETIME_S = 600


class RegistrationRefused(Exception):
    """The app cannot be registered from the federation; the message says why (shown on the
    IdP's error page: the redirect URI is not trusted yet)."""


def resolver(settings: Settings) -> Resolver:
    """The IdP's trust-chain resolver, made once per app (tests put their own)."""
    app = current_app
    existing = app.extensions.get("idp_federation_resolver")
    if existing is None:
        existing = Resolver(
            UrlFetcher.for_settings(settings),
            keys.trust_anchors(settings),
            check_trust_mark_status=True,
        )
        app.extensions["idp_federation_resolver"] = existing
    return existing


def is_entity_id(client_id: str, settings: Settings) -> bool:
    return acceptable_entity_id(client_id, allow_http_loopback=not settings.production)


def register_automatically(
    s: Session, settings: Settings, issuer: str, params: dict[str, str]
) -> dict[str, str]:
    """For an authorization request whose client_id is an entity id and which carries a
    request object: resolve the app's trust chain afresh (so a removal or a revoked trust
    mark counts at once), check the request object against the chain's metadata, register or
    refresh the client until the chain expires, and return the request object's parameters
    (RFC 9101: only those count). Anything else is returned unchanged."""
    client_id = params.get("client_id", "")
    token = params.get("request")
    if not token or not is_entity_id(client_id, settings):
        return params
    existing = s.get(Client, client_id)
    if existing is not None and existing.registration != REGISTRATION:
        return params  # registered otherwise: the usual checks (and refusals) apply
    rp, chain = _resolve_app(settings, client_id)
    claims = _request_object(token, rp, client_id, issuer)
    _remember_jti(s, client_id, claims)
    _upsert(s, client_id, rp, chain)
    out = {k: str(v) for k, v in claims.items() if isinstance(v, str | int) and k not in _JWT_ONLY}
    out["client_id"] = client_id
    return out


def register_for_assertion(s: Session, settings: Settings, form: Mapping[str, str]) -> None:
    """Pushed authorization requests (section 12.1.1.2): the app authenticates with
    private_key_jwt before the IdP knows it. When the assertion's issuer is an entity id, the
    app is registered from its chain first, so that client authentication can then check the
    assertion with the keys the federation vouches for. Nothing is trusted until it does."""
    assertion = form.get("client_assertion", "")
    try:
        iss = json.loads(base64.urlsafe_b64decode(_pad(assertion.split(".")[1]))).get("iss")
    except (ValueError, IndexError, AttributeError):
        return  # client authentication reports the malformed assertion
    if not isinstance(iss, str) or not is_entity_id(iss, settings):
        return
    existing = s.get(Client, iss)
    if form.get("client_id", iss) == iss and (
        existing is None or existing.registration == REGISTRATION
    ):
        rp, chain = _resolve_app(settings, iss)
        _upsert(s, iss, rp, chain)


def _pad(part: str) -> str:
    return part + "=" * (-len(part) % 4)


def _resolve_app(settings: Settings, client_id: str) -> tuple[dict[str, Any], TrustChain]:
    """The app's relying-party metadata after the federation's policies, from its chain
    resolved afresh (so a removal or a revoked trust mark counts at once)."""
    if len(client_id) > CLIENT_ID_MAX:
        raise RegistrationRefused("the entity id is too long to register")
    res = resolver(settings)
    if not res.trust_anchors:
        raise RegistrationRefused("this provider has no federation trust anchor configured")
    try:
        chain = res.resolve(client_id, fresh=True)
    except FederationError as exc:
        raise RegistrationRefused(
            f"the app's trust chain is refused ({exc.reason}): {exc.detail}"
        ) from None
    rp = chain.metadata.relying_party
    if rp is None:
        raise RegistrationRefused("the app publishes no openid_relying_party metadata")
    if "automatic" not in rp.client_registration_types:
        raise RegistrationRefused("the app does not use automatic registration")
    if not chain.has_trust_mark(CERTIFIED_PHR_APP):
        raise RegistrationRefused("the app holds no valid 'certified PHR app' trust mark")
    return rp.raw, chain


_JWT_ONLY = ("iss", "aud", "exp", "iat", "nbf", "jti", "request", "request_uri")
CLIENT_ID_MAX = 128


def _request_object(token: str, rp: dict[str, Any], client_id: str, issuer: str) -> dict:
    """RFC 9101 request object signed with a key of the app's (policy-applied) metadata."""
    jwks = rp.get("jwks")
    if not isinstance(jwks, dict):
        raise RegistrationRefused("the app's metadata has no jwks to check its request with")
    try:
        claims = jwt.decode(
            token,
            # The app's own JWK Set, as its metadata gives it; joserfc refuses a malformed one.
            KeySet.import_key_set(cast(KeySetSerialization, jwks)),
            algorithms=list(REQUEST_OBJECT_ALGS),
        ).claims
    except (JoseError, ValueError, TypeError):
        raise RegistrationRefused("the request object is not signed with the app's key") from None
    now = time.time()
    aud = claims.get("aud")
    if claims.get("iss") != client_id or claims.get("client_id") != client_id:
        raise RegistrationRefused("the request object's iss and client_id must be the app")
    if issuer not in (aud if isinstance(aud, list) else [aud]):
        raise RegistrationRefused("the request object is meant for another provider")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp < now - 30 or exp > now + MAX_REQUEST_OBJECT_LIFETIME_S:
        raise RegistrationRefused("the request object has expired or lives too long")
    if not claims.get("jti"):
        raise RegistrationRefused("the request object needs a jti")
    return claims


def _remember_jti(s: Session, client_id: str, claims: dict[str, Any]) -> None:
    """A request object is used once. Its id is kept until it expires in the table of seen
    proof ids (shared with DPoP, purged the same way; the hash is namespaced so the two kinds
    never meet), so a captured request cannot be replayed on any worker."""
    jti_hash = sha256_hex(f"request-object\n{client_id}\n{claims['jti']}")
    if s.get(DpopJti, jti_hash) is not None:
        raise RegistrationRefused("this request object was already used")
    s.add(DpopJti(jti_hash=jti_hash, expires_at=datetime.fromtimestamp(claims["exp"], UTC)))


def _upsert(s: Session, client_id: str, rp: dict[str, Any], chain: TrustChain) -> None:
    meta = {k: v for k, v in rp.items() if k != "client_id"}
    meta["phr_federation_exp"] = chain.exp
    meta["phr_trust_anchor"] = chain.trust_anchor
    for ours in [k for k in meta if k.startswith("phr_") and k not in _FEDERATION_FIELDS]:
        del meta[ours]  # an app cannot give itself a named sector, first-party status, …
    try:
        validate_metadata(meta)
    except ValueError as exc:
        raise RegistrationRefused(f"the app's metadata cannot be served: {exc}") from None
    sector = sector_for({**meta, "client_id": client_id})
    row = s.get(Client, client_id)
    if row is None:
        row = Client(client_id=client_id, registration=REGISTRATION, sector=sector)
        s.add(row)
    elif row.registration != REGISTRATION:
        raise RegistrationRefused("a client registered otherwise already has this client_id")
    elif row.sector_locked and row.sector != sector:
        raise RegistrationRefused("the app's sector changed after people signed in")
    row.sector = sector
    row.client_name = str(meta.get("client_name") or client_id)[:200]
    row.client_metadata = meta
    row.secret_hash = None
    s.flush()


_FEDERATION_FIELDS = ("phr_federation_exp", "phr_trust_anchor")
