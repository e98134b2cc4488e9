"""Typed shapes of what the federation sends (OpenID Federation 1.0), parsed once at the boundary.

Statements arrive as JSON claims inside signed JWTs; here they become frozen dataclasses, so the
trust chain, the directory and the issuer list read attributes instead of `.get()`s on
dictionaries. A statement whose required claims are missing or of the wrong type is refused
with FederationError(MALFORMED), naming the claim. Optional members the spec types loosely and
that the chain only consults (`constraints`' members, `trust_marks` entries) are kept when well
formed and otherwise read as absent, as the spec asks for trust marks ("ignored when invalid").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.errors import MALFORMED, FederationError

# Claims a Subordinate Statement may carry and an Entity Configuration may not, and back.
SUBORDINATE_ONLY = ("metadata_policy", "constraints", "source_endpoint")
CONFIGURATION_ONLY = ("authority_hints", "trust_marks", "trust_mark_issuers", "trust_mark_owners")
Metadata = dict[str, dict[str, Any]]  # per entity type, its metadata parameters


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


@dataclass(frozen=True)
class NamingConstraints:
    """Section 6.2.2: host-name patterns entity ids below the issuer must (not) match."""

    permitted: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Constraints:
    """Section 6.2 (`constraints` of a Subordinate Statement); None: not constrained."""

    max_path_length: int | None = None
    naming: NamingConstraints | None = None
    allowed_entity_types: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Constraints:
        limit = raw.get("max_path_length")
        names = raw.get("naming_constraints")
        allowed = raw.get("allowed_entity_types")
        return cls(
            max_path_length=limit if isinstance(limit, int) else None,
            naming=NamingConstraints(
                _strings(names.get("permitted")), _strings(names.get("excluded"))
            )
            if isinstance(names, dict)
            else None,
            allowed_entity_types=_strings(allowed) if isinstance(allowed, list) else None,
        )


@dataclass(frozen=True)
class TrustMarkRef:
    """One entry of an Entity Configuration's `trust_marks` (section 7)."""

    trust_mark: str
    trust_mark_type: str | None = None


@dataclass(frozen=True)
class FederationEndpoints:
    """The `federation_entity` metadata's endpoints (section 5.1.1); None: not published."""

    fetch: str | None = None
    list: str | None = None
    resolve: str | None = None
    trust_mark_status: str | None = None

    @classmethod
    def parse(cls, metadata: Metadata) -> FederationEndpoints:
        md = metadata.get("federation_entity")
        md = md if isinstance(md, dict) else {}

        def url(name: str) -> str | None:
            value = md.get(f"federation_{name}_endpoint")
            return value if isinstance(value, str) and value else None

        return cls(url("fetch"), url("list"), url("resolve"), url("trust_mark_status"))


@dataclass(frozen=True)
class EntityStatement:
    """A parsed statement (section 3). `claims` keeps every claim as sent (extensions too);
    `jwt` is the signed original, kept for trust chains."""

    iss: str
    sub: str
    iat: int
    exp: int
    jwks: dict[str, Any]
    claims: dict[str, Any] = field(repr=False)
    jwt: str = field(repr=False)
    authority_hints: list[str] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict, repr=False)
    metadata_policy: Metadata = field(default_factory=dict, repr=False)
    metadata_policy_crit: tuple[str, ...] = ()
    constraints: Constraints = field(default_factory=Constraints)
    trust_marks: tuple[TrustMarkRef, ...] = ()
    trust_mark_issuers: dict[str, list[str]] = field(default_factory=dict, repr=False)
    endpoints: FederationEndpoints = field(default_factory=FederationEndpoints)

    @property
    def is_configuration(self) -> bool:
        return self.iss == self.sub


def _object(claims: dict[str, Any], name: str, what: str) -> dict[str, Any]:
    value = claims.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FederationError(MALFORMED, f"{what}: {name} must be a JSON object")
    return value


def _per_entity_type(claims: dict[str, Any], name: str, what: str) -> Metadata:
    """`metadata` or `metadata_policy`: a JSON object of JSON objects, one per entity type."""
    value = _object(claims, name, what)
    for etype, member in value.items():
        if not isinstance(member, dict):
            raise FederationError(MALFORMED, f"{what}: {name}.{etype} must be a JSON object")
    return value


def parse_statement(claims: dict[str, Any], token: str, *, what: str) -> EntityStatement:
    """The typed statement of `claims` (from `token`), or FederationError(MALFORMED) naming
    the first claim that is missing or of the wrong type."""
    iss, sub, jwks = claims.get("iss"), claims.get("sub"), claims.get("jwks")
    if not isinstance(iss, str) or not isinstance(sub, str) or not iss or not sub:
        raise FederationError(MALFORMED, f"{what}: iss and sub are required")
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise FederationError(MALFORMED, f"{what}: jwks (a non-empty JWK Set) is required")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise FederationError(MALFORMED, f"{what}: iat and exp must be integers")
    misplaced = SUBORDINATE_ONLY if iss == sub else CONFIGURATION_ONLY
    for name in misplaced:
        if name in claims:
            kind = "an Entity Configuration" if iss == sub else "a Subordinate Statement"
            raise FederationError(MALFORMED, f"{what}: {name} is not allowed in {kind}")
    metadata = _per_entity_type(claims, "metadata", what)
    metadata_policy = _per_entity_type(claims, "metadata_policy", what)
    constraints = _object(claims, "constraints", what)
    hints = claims.get("authority_hints")
    if hints is not None and (
        not isinstance(hints, list) or not all(isinstance(h, str) for h in hints)
    ):
        raise FederationError(MALFORMED, f"{what}: authority_hints must be a list of entity ids")
    issuers = claims.get("trust_mark_issuers")
    return EntityStatement(
        iss,
        sub,
        int(iat),
        int(exp),
        jwks,
        claims,
        token,
        authority_hints=list(hints or ()),
        metadata=metadata,
        metadata_policy=metadata_policy,
        metadata_policy_crit=_strings(claims.get("metadata_policy_crit")),
        constraints=Constraints.parse(constraints),
        trust_marks=_trust_marks(claims.get("trust_marks")),
        trust_mark_issuers={
            str(k): list(_strings(v)) for k, v in issuers.items() if isinstance(v, list)
        }
        if isinstance(issuers, dict)
        else {},
        endpoints=FederationEndpoints.parse(metadata),
    )


def _trust_marks(raw: Any) -> tuple[TrustMarkRef, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for entry in raw:
        if isinstance(entry, dict) and isinstance(entry.get("trust_mark"), str):
            kind = entry.get("trust_mark_type")
            out.append(TrustMarkRef(entry["trust_mark"], kind if isinstance(kind, str) else None))
    return tuple(out)


@dataclass(frozen=True)
class ResourceMetadata:
    """A protected resource's `oauth_resource` metadata, policies applied: `resource` (its
    base URL, the token audience) and the municipalities a PHR server holds records of."""

    resource: str
    municipalities: tuple[str, ...]

    @classmethod
    def of(cls, metadata: Metadata, key: str) -> ResourceMetadata | None:
        """None when it is no PHR server (no resource URL, or no non-empty list at `key`)."""
        md = metadata.get("oauth_resource")
        md = md if isinstance(md, dict) else {}
        resource, cities = md.get("resource"), md.get(key)
        if not isinstance(resource, str) or not isinstance(cities, list) or not cities:
            return None
        return cls(resource.rstrip("/"), _strings(cities))


@dataclass(frozen=True)
class ProviderMetadata:
    """An OpenID provider's `openid_provider` metadata, policies applied; `raw` keeps every
    parameter for the code that verifies its tokens."""

    issuer: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, metadata: Metadata) -> ProviderMetadata | None:
        op = metadata.get("openid_provider")
        if not isinstance(op, dict) or not isinstance(op.get("issuer"), str):
            return None
        return cls(op["issuer"], op)


@dataclass(frozen=True)
class RelyingPartyMetadata:
    """An app's `openid_relying_party` metadata, policies applied; `raw` keeps every parameter
    for the automatic registration that copies it into the client."""

    client_registration_types: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, metadata: Metadata) -> RelyingPartyMetadata | None:
        rp = metadata.get("openid_relying_party")
        if not isinstance(rp, dict):
            return None
        return cls(_strings(rp.get("client_registration_types")), rp)


@dataclass(frozen=True)
class ProtectedResource:
    """Any protected resource's `oauth_resource` metadata: its JWK Set (where an encryption
    key for its access tokens may be), whether or not it is a PHR server."""

    jwks: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, metadata: Metadata) -> ProtectedResource | None:
        md = metadata.get("oauth_resource")
        if not isinstance(md, dict):
            return None
        jwks = md.get("jwks")
        return cls(jwks if isinstance(jwks, dict) else None)


@dataclass(frozen=True)
class FederationEntity:
    """The `federation_entity` metadata (section 5.1.1) a chain's reader shows: its name."""

    organization_name: str | None = None

    @classmethod
    def of(cls, metadata: Metadata) -> FederationEntity:
        md = metadata.get("federation_entity")
        name = md.get("organization_name") if isinstance(md, dict) else None
        return cls(name if isinstance(name, str) and name else None)


@dataclass(frozen=True, eq=False)
class ChainMetadata(Mapping[str, dict[str, Any]]):
    """A trust chain's metadata, policies applied, parsed per entity type once when the chain
    is built: code reads `provider`, `relying_party`, `resource`, `entity` or `phr_server()`.
    As a Mapping it is the spec's JSON object (entity type → parameters), which is what a
    resolve response carries (`raw`)."""

    raw: Metadata = field(repr=False)
    provider: ProviderMetadata | None = None
    relying_party: RelyingPartyMetadata | None = None
    resource: ProtectedResource | None = None
    entity: FederationEntity = field(default_factory=FederationEntity)

    @classmethod
    def parse(cls, raw: Metadata) -> ChainMetadata:
        return cls(
            raw,
            ProviderMetadata.of(raw),
            RelyingPartyMetadata.of(raw),
            ProtectedResource.of(raw),
            FederationEntity.of(raw),
        )

    def phr_server(self, key: str) -> ResourceMetadata | None:
        """The PHR server this chain's leaf is (its municipalities listed at `key`), if any."""
        return ResourceMetadata.of(self.raw, key)

    def __getitem__(self, entity_type: str) -> dict[str, Any]:
        return self.raw[entity_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)
