"""Entity statements become typed objects at the boundary (federation/entity/schema.py); a
malformed one (a required claim missing or of the wrong type, a claim in the wrong kind of
statement) is refused with MALFORMED naming the claim, before any signature is looked at."""

from __future__ import annotations

from typing import Any

import pytest

from federation import jose
from federation.entity import statement
from federation.entity.schema import (
    ChainMetadata,
    Constraints,
    FederationEntity,
    NamingConstraints,
    ProtectedResource,
    ProviderMetadata,
    ResourceMetadata,
    TrustMarkRef,
)
from federation.errors import MALFORMED, FederationError

KEY = jose.federation_key("a long development secret for the schema tests, 48 chars")
LEAF = "https://phr.city.example"
ANCHOR = "https://anchor.example"


def _claims(iss: str, fields: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A statement by `iss` about LEAF with `fields`, then `changes` (None: leave it out)."""
    claims = {"iss": iss, "sub": LEAF, "iat": 1_700_000_000, "exp": 1_700_003_600}
    claims.update(jwks=jose.public_jwks(KEY), **fields)
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _configuration(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "metadata": {
            "federation_entity": {
                "federation_fetch_endpoint": f"{LEAF}/fetch",
                "federation_list_endpoint": f"{LEAF}/list",
            },
            "oauth_resource": {"resource": f"{LEAF}/fhir/", "phr_municipalities": ["072010"]},
        },
        "authority_hints": [ANCHOR],
        "trust_marks": [
            {"trust_mark_type": "https://anchor.example/certified", "trust_mark": "a.b.c"},
            {"trust_mark_type": "no token"},  # ignored, as the spec says for invalid marks
            "not an object",
        ],
    }
    return _claims(LEAF, fields, changes)


def _subordinate(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "metadata_policy": {"oauth_resource": {"phr_municipalities": {"subset_of": ["072010"]}}},
        "metadata_policy_crit": ["regexp"],
        "constraints": {
            "max_path_length": 1,
            "naming_constraints": {"permitted": [".example"], "excluded": ["bad.example"]},
            "allowed_entity_types": ["oauth_resource"],
        },
    }
    return _claims(ANCHOR, fields, changes)


def _parse(claims: dict[str, Any], typ: str = statement.TYP) -> statement.EntityStatement:
    return statement.parse(jose.sign(claims, KEY, typ), what="the statement")


def _refused(claims: dict[str, Any]) -> str:
    with pytest.raises(FederationError) as err:
        _parse(claims)
    assert err.value.reason == MALFORMED
    return err.value.detail


def test_a_configuration_is_read_into_typed_fields() -> None:
    ec = _parse(_configuration())
    assert ec.is_configuration and (ec.iss, ec.sub) == (LEAF, LEAF)
    assert (ec.iat, ec.exp) == (1_700_000_000, 1_700_003_600)
    assert ec.authority_hints == [ANCHOR]
    assert ec.endpoints.fetch == f"{LEAF}/fetch" and ec.endpoints.list == f"{LEAF}/list"
    assert ec.endpoints.resolve is None and ec.endpoints.trust_mark_status is None
    assert ec.trust_marks == (TrustMarkRef("a.b.c", "https://anchor.example/certified"),)
    assert ec.constraints == Constraints()
    resource = ResourceMetadata.of(ec.metadata, "phr_municipalities")
    assert resource == ResourceMetadata(f"{LEAF}/fhir", ("072010",))
    assert ProviderMetadata.of(ec.metadata) is None
    assert ec.claims["metadata"] == ec.metadata  # the claims as sent stay at hand


def test_a_chains_metadata_is_read_into_typed_fields() -> None:
    """What the IdP, the portal and the directory read of a chain's (policy-applied) metadata
    is parsed once; the Mapping view stays the spec's JSON object for resolve responses."""
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "use": "enc"}]}
    raw = {
        "openid_provider": {"issuer": LEAF, "jwks_uri": f"{LEAF}/jwks"},
        "openid_relying_party": {"client_registration_types": ["automatic"], "jwks": jwks},
        "oauth_resource": {"resource": f"{LEAF}/fhir", "jwks": jwks, "phr_municipalities": ["1"]},
        "federation_entity": {"organization_name": "City of Example"},
    }
    md = ChainMetadata.parse(raw)
    assert md.provider == ProviderMetadata(LEAF, raw["openid_provider"])
    assert md.relying_party is not None
    assert md.relying_party.client_registration_types == ("automatic",)
    assert md.relying_party.raw is raw["openid_relying_party"]
    assert md.resource == ProtectedResource(jwks)
    assert md.entity == FederationEntity("City of Example")
    assert md.phr_server("phr_municipalities") == ResourceMetadata(f"{LEAF}/fhir", ("1",))
    assert md == raw and set(md) == set(raw) and md["oauth_resource"] is raw["oauth_resource"]

    odd = ChainMetadata.parse(
        {
            "openid_provider": {"issuer": 1},
            "openid_relying_party": {"client_registration_types": "automatic"},
            "oauth_resource": {"jwks": "k"},
            "federation_entity": {"organization_name": 5},
        }
    )
    assert odd.provider is None and odd.phr_server("phr_municipalities") is None
    assert odd.relying_party is not None and odd.relying_party.client_registration_types == ()
    assert odd.resource == ProtectedResource(None)
    assert odd.entity == FederationEntity(None)
    empty = ChainMetadata.parse({})
    assert (empty.provider, empty.relying_party, empty.resource) == (None, None, None)
    assert empty.entity == FederationEntity() and len(empty) == 0


def test_a_subordinate_statement_is_read_into_typed_fields() -> None:
    ss = _parse(_subordinate())
    assert not ss.is_configuration
    assert ss.constraints == Constraints(
        max_path_length=1,
        naming=NamingConstraints(permitted=(".example",), excluded=("bad.example",)),
        allowed_entity_types=("oauth_resource",),
    )
    assert ss.metadata_policy["oauth_resource"]["phr_municipalities"] == {"subset_of": ["072010"]}
    assert ss.metadata_policy_crit == ("regexp",)
    assert ss.authority_hints == [] and ss.trust_marks == ()


def test_constraint_members_of_the_wrong_type_read_as_absent() -> None:
    """As before the schema: the chain only consults them, and a mistyped one constrains
    nothing rather than everything."""
    ss = _parse(
        _subordinate(
            constraints={
                "max_path_length": "1",
                "naming_constraints": [],
                "allowed_entity_types": "x",
            }
        )
    )
    assert ss.constraints == Constraints()


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (_configuration(iss=None), "iss and sub are required"),
        (_configuration(sub=""), "iss and sub are required"),
        (_configuration(iss=42), "iss and sub are required"),
        (_configuration(jwks=None), "jwks (a non-empty JWK Set) is required"),
        (_configuration(jwks={"keys": []}), "jwks (a non-empty JWK Set) is required"),
        (_configuration(jwks={"keys": "k"}), "jwks (a non-empty JWK Set) is required"),
        (_configuration(iat=None), "iat and exp must be integers"),
        (_configuration(exp="1700003600"), "iat and exp must be integers"),
        (_configuration(exp=1.5), "iat and exp must be integers"),
        (_configuration(metadata=["oauth_resource"]), "metadata must be a JSON object"),
        (
            _configuration(metadata={"oauth_resource": "https://x"}),
            "metadata.oauth_resource must be a JSON object",
        ),
        (_configuration(authority_hints=ANCHOR), "authority_hints must be a list of entity ids"),
        (_configuration(authority_hints=[1]), "authority_hints must be a list of entity ids"),
        (_configuration(constraints={}), "constraints is not allowed in an Entity Configuration"),
        (
            _configuration(metadata_policy={}),
            "metadata_policy is not allowed in an Entity Configuration",
        ),
        (_subordinate(constraints=[1]), "constraints must be a JSON object"),
        (_subordinate(metadata_policy="subset"), "metadata_policy must be a JSON object"),
        (
            _subordinate(metadata_policy={"oauth_resource": []}),
            "metadata_policy.oauth_resource must be a JSON object",
        ),
        (
            _subordinate(authority_hints=[ANCHOR]),
            "authority_hints is not allowed in a Subordinate Statement",
        ),
        (_subordinate(trust_marks=[]), "trust_marks is not allowed in a Subordinate Statement"),
    ],
)
def test_malformed_statements_are_refused_naming_the_claim(
    claims: dict[str, Any], message: str
) -> None:
    assert _refused(claims) == f"the statement: {message}"


def test_a_statement_of_another_type_is_refused() -> None:
    with pytest.raises(FederationError) as err:
        _parse(_configuration(), typ="JWT")
    assert err.value.reason == MALFORMED and "typ must be entity-statement+jwt" in str(err.value)


def test_provider_metadata_is_typed() -> None:
    md = {"openid_provider": {"issuer": "https://idp.city.example", "jwks_uri": "https://j"}}
    op = ProviderMetadata.of(md)
    assert op is not None and op.issuer == "https://idp.city.example"
    assert op.raw["jwks_uri"] == "https://j"
    assert ProviderMetadata.of({"openid_provider": {"issuer": 7}}) is None
    assert ProviderMetadata.of({"openid_provider": "https://idp"}) is None


def test_resource_metadata_that_is_no_phr_server_is_none() -> None:
    key = "phr_municipalities"
    assert ResourceMetadata.of({"oauth_resource": {"resource": "https://c/api"}}, key) is None
    no_cities = {"oauth_resource": {"resource": "https://c", key: []}}
    assert ResourceMetadata.of(no_cities, key) is None
    mixed = {"oauth_resource": {"resource": "https://s/", key: ["072010", 7]}}
    assert ResourceMetadata.of(mixed, key) == ResourceMetadata("https://s", ("072010",))
