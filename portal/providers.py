"""Where a citizen may sign in to the portal: the platform's own IdP first, then each city-run
OpenID provider named in PHR_CONSENT_OTHER_IDPS that the federation currently vouches for.

Why a configured list and static registration, not automatic registration: the portal must be
a first-party client in the PHR sector at every IdP it uses (its ID token's `sub` is the
subject consents and city links are keyed by, and its tokens read the person's own records),
and that is something no IdP may grant a client just because its trust chain validates. So a
city IdP's operator registers the portal once, as a static client with `private_key_jwt` and
the portal's public key (`phr consent client-jwk`), and the portal lists that IdP here. The
federation still decides whether it is trusted: an IdP whose chain no longer resolves (removed,
expired) is not offered, and a sign-in that comes back from it is refused.

People who sign in at another IdP are known to the consent service as `<issuer>#<sub>`
(consent.auth, federation.resource): the same person at two IdPs is two subjects, each with its
own consents and city links, until a future "link my accounts" feature joins them.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from joserfc import jwt
from joserfc.jwk import ECKey

from federation import keys
from federation.entity.fetch import UrlFetcher
from federation.entity.trust_chain import Resolver
from federation.errors import FederationError
from phr_core.config import Settings
from phr_core.secrets import derive_key
from phr_core.webapp import settings

log = logging.getLogger(__name__)

ASSERTION_TTL_S = 60
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


@dataclass(frozen=True)
class Provider:
    issuer: str
    name: str
    home: bool


def home_issuer() -> str:
    return settings().issuer


def subject_of(issuer: str, sub: str) -> str:
    """The subject the consent service keys a person by: namespaced for another IdP's."""
    return sub if issuer == home_issuer() else f"{issuer}#{sub}"


def _resolver(cfg: Settings) -> Resolver:
    app = current_app
    existing = app.extensions.get("portal_federation_resolver")
    if existing is None:
        existing = Resolver(UrlFetcher.for_settings(cfg), keys.trust_anchors(cfg))
        app.extensions["portal_federation_resolver"] = existing
    return existing


def _vouched(cfg: Settings, issuer: str) -> Provider | None:
    try:
        chain = _resolver(cfg).resolve(issuer)
    except FederationError as exc:
        log.warning("OpenID provider %s not offered: %s", issuer, exc.reason)
        return None
    op = chain.metadata.provider
    if op is None or op.issuer != issuer:
        log.warning("OpenID provider %s not offered: not an OpenID provider", issuer)
        return None
    return Provider(issuer, chain.metadata.entity.organization_name or issuer, False)


def offered() -> list[Provider]:
    """The providers to offer, the home IdP first."""
    cfg = settings()
    out = [Provider(cfg.issuer, "", True)]
    for issuer in cfg.option("PHR_CONSENT_OTHER_IDPS").split():
        issuer = issuer.rstrip("/")
        if issuer != cfg.issuer and (found := _vouched(cfg, issuer)) is not None:
            out.append(found)
    return out


def find(issuer: str) -> Provider | None:
    """The offered provider with this issuer, else None (unknown, or no longer vouched for)."""
    return next((p for p in offered() if p.issuer == issuer), None)


# --- private_key_jwt at the other IdPs ------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _key_from(secret: str) -> ECKey:
    material = int.from_bytes(derive_key(secret, "portal-client-key/v1", 48), "big")
    key = ECKey.import_key(ec.derive_private_key(material % (_P256_ORDER - 1) + 1, ec.SECP256R1()))
    key.ensure_kid()
    return key


def client_key(cfg: Settings) -> ECKey:
    """The portal's client-authentication key at other IdPs: derived from its client secret
    (PHR_CONSENT_CLIENT_SECRET) for this one purpose, so it needs no setting of its own and
    changes when that secret is changed."""
    return _key_from(cfg.secret("PHR_CONSENT_CLIENT_SECRET"))


def client_jwk(cfg: Settings) -> dict[str, Any]:
    """The public JWK a city IdP registers for the portal."""
    key = client_key(cfg)
    out: dict[str, Any] = dict(key.as_dict(private=False))
    out.update(kid=key.kid, use="sig", alg="ES256")
    return out


def client_assertion(client_id: str, token_endpoint: str) -> dict[str, str]:
    """The form fields of a private_key_jwt client authentication (RFC 7523)."""
    key = client_key(settings())
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "iat": now,
        "exp": now + ASSERTION_TTL_S,
        "jti": secrets.token_urlsafe(16),
    }
    token = jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "JWT"}, claims, key)
    return {
        "client_id": client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": token,
    }
