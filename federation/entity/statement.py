"""Entity Statements (OpenID Federation 1.0 section 3): an Entity Configuration is self-signed
(`iss == sub`), a Subordinate Statement is issued by a superior about its subordinate. Both are
`entity-statement+jwt`; this module builds, signs and parses them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from federation import jose
from federation.errors import MALFORMED, FederationError

TYP = "entity-statement+jwt"
MEDIA_TYPE = "application/entity-statement+jwt"
WELL_KNOWN = "/.well-known/openid-federation"
ENTITY_TYPES = (
    "federation_entity",
    "openid_provider",
    "openid_relying_party",
    "oauth_authorization_server",
    "oauth_client",
    "oauth_resource",
)
# Claims a Subordinate Statement may carry and an Entity Configuration may not, and back.
_SUBORDINATE_ONLY = ("metadata_policy", "constraints", "source_endpoint")
_CONFIGURATION_ONLY = ("authority_hints", "trust_marks", "trust_mark_issuers", "trust_mark_owners")


def configuration_url(entity_id: str) -> str:
    """Where an entity publishes its Entity Configuration (section 9)."""
    return entity_id.rstrip("/") + WELL_KNOWN


@dataclass(frozen=True)
class EntityStatement:
    """A parsed statement. `jwt` is the signed original, kept for trust chains."""

    iss: str
    sub: str
    iat: int
    exp: int
    jwks: dict[str, Any]
    claims: dict[str, Any] = field(repr=False)
    jwt: str = field(repr=False)

    @property
    def is_configuration(self) -> bool:
        return self.iss == self.sub

    @property
    def authority_hints(self) -> list[str]:
        return list(self.claims.get("authority_hints") or [])

    @property
    def metadata(self) -> dict[str, dict[str, Any]]:
        return dict(self.claims.get("metadata") or {})

    @property
    def metadata_policy(self) -> dict[str, dict[str, Any]]:
        return dict(self.claims.get("metadata_policy") or {})

    @property
    def constraints(self) -> dict[str, Any]:
        return dict(self.claims.get("constraints") or {})

    def federation_endpoint(self, name: str) -> str | None:
        """An endpoint from the `federation_entity` metadata, e.g. `federation_fetch_endpoint`."""
        value = self.metadata.get("federation_entity", {}).get(name)
        return value if isinstance(value, str) else None


def parse(token: str, *, what: str) -> EntityStatement:
    """The statement's claims, checked for shape only (the signature is checked by the trust
    chain, which knows which key must have made it)."""
    header, claims = jose.peek(token)
    if header.get("typ") != TYP:
        raise FederationError(MALFORMED, f"{what}: typ must be {TYP}")
    iss, sub, jwks = claims.get("iss"), claims.get("sub"), claims.get("jwks")
    if not isinstance(iss, str) or not isinstance(sub, str) or not iss or not sub:
        raise FederationError(MALFORMED, f"{what}: iss and sub are required")
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise FederationError(MALFORMED, f"{what}: jwks (a non-empty JWK Set) is required")
    if not isinstance(claims.get("iat"), int) or not isinstance(claims.get("exp"), int):
        raise FederationError(MALFORMED, f"{what}: iat and exp must be integers")
    misplaced = _SUBORDINATE_ONLY if iss == sub else _CONFIGURATION_ONLY
    for name in misplaced:
        if name in claims:
            kind = "an Entity Configuration" if iss == sub else "a Subordinate Statement"
            raise FederationError(MALFORMED, f"{what}: {name} is not allowed in {kind}")
    for name in ("metadata", "metadata_policy", "constraints"):
        if name in claims and not isinstance(claims[name], dict):
            raise FederationError(MALFORMED, f"{what}: {name} must be a JSON object")
    hints = claims.get("authority_hints")
    if hints is not None and (
        not isinstance(hints, list) or not all(isinstance(h, str) for h in hints)
    ):
        raise FederationError(MALFORMED, f"{what}: authority_hints must be a list of entity ids")
    return EntityStatement(iss, sub, claims["iat"], claims["exp"], jwks, claims, token)


def sign_configuration(
    entity_id: str,
    key: jose.FederationKey,
    metadata: dict[str, dict[str, Any]],
    *,
    authority_hints: list[str] | None = None,
    lifetime_s: int = 3600,
    now: int | None = None,
    **extra: Any,
) -> str:
    """A self-signed Entity Configuration for `entity_id` (section 3.1)."""
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": entity_id,
        "sub": entity_id,
        "iat": now,
        "exp": now + lifetime_s,
        "jwks": jose.public_jwks(key),
        "metadata": metadata,
    }
    if authority_hints:
        claims["authority_hints"] = list(authority_hints)
    claims.update({k: v for k, v in extra.items() if v is not None})
    return jose.sign(claims, key, TYP)


def sign_subordinate(
    issuer: str,
    key: jose.FederationKey,
    subject: str,
    subject_jwks: dict[str, Any],
    *,
    metadata_policy: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    constraints: dict[str, Any] | None = None,
    lifetime_s: int = 3600,
    now: int | None = None,
    source_endpoint: str | None = None,
) -> str:
    """A Subordinate Statement: `issuer` vouches that `subject_jwks` are `subject`'s keys."""
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "iat": now,
        "exp": now + lifetime_s,
        "jwks": subject_jwks,
    }
    for name, value in (
        ("metadata_policy", metadata_policy),
        ("metadata", metadata),
        ("constraints", constraints),
        ("source_endpoint", source_endpoint),
    ):
        if value:
            claims[name] = value
    return jose.sign(claims, key, TYP)
