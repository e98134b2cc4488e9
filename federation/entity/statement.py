"""Entity Statements (OpenID Federation 1.0 section 3): an Entity Configuration is self-signed
(`iss == sub`), a Subordinate Statement is issued by a superior about its subordinate. Both are
`entity-statement+jwt`; this module builds, signs and parses them."""

from __future__ import annotations

import time
from typing import Any

from federation import jose
from federation.entity.schema import EntityStatement as EntityStatement  # its home is schema
from federation.entity.schema import parse_statement
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


def configuration_url(entity_id: str) -> str:
    """Where an entity publishes its Entity Configuration (section 9)."""
    return entity_id.rstrip("/") + WELL_KNOWN


def parse(token: str, *, what: str) -> EntityStatement:
    """The statement, typed (federation/entity/schema.py) and checked for shape only (the
    signature is checked by the trust chain, which knows which key must have made it)."""
    header, claims = jose.peek(token)
    if header.get("typ") != TYP:
        raise FederationError(MALFORMED, f"{what}: typ must be {TYP}")
    return parse_statement(claims, token, what=what)


def sign_configuration(
    entity_id: str,
    key: jose.FederationKey,
    metadata: dict[str, dict[str, Any]],
    *,
    authority_hints: list[str] | None = None,
    lifetime_s: int = 3600,
    now: int | None = None,
    published: tuple[jose.FederationKey, ...] = (),
    **extra: Any,
) -> str:
    """A self-signed Entity Configuration for `entity_id` (section 3.1), signed with `key` and
    publishing `published` (default: `key` alone; during a key rotation, old keys too)."""
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": entity_id,
        "sub": entity_id,
        "iat": now,
        "exp": now + lifetime_s,
        "jwks": jose.public_jwks(*(published or (key,))),
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
