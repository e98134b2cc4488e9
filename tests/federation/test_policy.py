"""Metadata policy operators (OpenID Federation 1.0 section 6.1): applying, combining along a
chain, and the contradictions that refuse it."""

from __future__ import annotations

import pytest

from federation import policy
from federation.errors import POLICY_VIOLATION, FederationError

RP = "openid_relying_party"


def resolve(*policies: dict, metadata: dict) -> dict:
    return policy.resolve([(p, []) for p in policies], metadata, RP)


def violation(*policies: dict, metadata: dict) -> str:
    with pytest.raises(FederationError) as info:
        resolve(*policies, metadata=metadata)
    assert info.value.reason == POLICY_VIOLATION
    return info.value.detail


def test_each_operator_applied() -> None:
    p = {
        RP: {
            "subject_type": {"value": "pairwise"},
            "contacts": {"add": ["ops@anchor.example.jp"]},
            "id_token_signed_response_alg": {"default": "ES256"},
            "token_endpoint_auth_method": {"one_of": ["private_key_jwt", "tls_client_auth"]},
            "grant_types": {"subset_of": ["authorization_code", "refresh_token"]},
            "response_types": {"superset_of": ["code"]},
            "redirect_uris": {"essential": True},
            "logo_uri": {"value": None},
        }
    }
    md = {
        "subject_type": "public",
        "contacts": ["dev@app.example.jp"],
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["authorization_code", "implicit"],
        "response_types": ["code", "id_token"],
        "redirect_uris": ["https://app.example.jp/cb"],
        "logo_uri": "https://app.example.jp/logo.png",
    }
    out = resolve(p, metadata=md)
    assert out["subject_type"] == "pairwise"
    assert out["contacts"] == ["dev@app.example.jp", "ops@anchor.example.jp"]
    assert out["id_token_signed_response_alg"] == "ES256"
    assert out["grant_types"] == ["authorization_code"]  # implicit cut away
    assert "logo_uri" not in out  # value null removes
    assert md["subject_type"] == "public"  # the input is not changed


def test_violations_name_the_parameter() -> None:
    assert "token_endpoint_auth_method" in violation(
        {RP: {"token_endpoint_auth_method": {"one_of": ["private_key_jwt"]}}},
        metadata={"token_endpoint_auth_method": "none"},
    )
    assert "response_types" in violation(
        {RP: {"response_types": {"superset_of": ["code"]}}}, metadata={"response_types": ["x"]}
    )
    assert "redirect_uris" in violation({RP: {"redirect_uris": {"essential": True}}}, metadata={})


def test_a_subordinate_policy_can_only_narrow() -> None:
    anchor = {RP: {"grant_types": {"subset_of": ["authorization_code", "refresh_token"]}}}
    pref = {RP: {"grant_types": {"subset_of": ["authorization_code"]}}}
    out = resolve(anchor, pref, metadata={"grant_types": ["authorization_code", "refresh_token"]})
    assert out["grant_types"] == ["authorization_code"]

    one_of = {RP: {"alg": {"one_of": ["ES256", "RS256"]}}}
    assert resolve(one_of, {RP: {"alg": {"one_of": ["ES256"]}}}, metadata={"alg": "ES256"})
    assert "nothing in common" in violation(
        one_of, {RP: {"alg": {"one_of": ["PS512"]}}}, metadata={"alg": "ES256"}
    )
    assert "conflicts" in violation(
        {RP: {"subject_type": {"value": "pairwise"}}},
        {RP: {"subject_type": {"value": "public"}}},
        metadata={},
    )
    # essential: once a superior demands it, a subordinate cannot relax it
    combined = policy.combine(
        {RP: {"jwks": {"essential": True}}}, {RP: {"jwks": {"essential": False}}}
    )
    assert combined[RP]["jwks"]["essential"] is True
    # add and superset_of accumulate
    combined = policy.combine(
        {RP: {"contacts": {"add": ["a"]}}}, {RP: {"contacts": {"add": ["b"]}}}
    )
    assert combined[RP]["contacts"]["add"] == ["a", "b"]


def test_contradictory_operators_in_one_policy_are_refused() -> None:
    assert "not one of" in violation({RP: {"x": {"value": "c", "one_of": ["a", "b"]}}}, metadata={})
    assert "subset_of" in violation({RP: {"x": {"one_of": ["a"], "subset_of": ["a"]}}}, metadata={})
    assert "add" in violation({RP: {"x": {"add": ["z"], "subset_of": ["a"]}}}, metadata={})
    assert "list" in violation({RP: {"x": {"subset_of": "a"}}}, metadata={})


def test_unknown_operators_are_ignored_unless_critical() -> None:
    p = {RP: {"x": {"regexp": "^https://"}}}
    assert resolve(p, metadata={"x": "http://a"}) == {"x": "http://a"}
    with pytest.raises(FederationError, match="critical operator"):
        policy.resolve([(p, ["regexp"])], {"x": "http://a"}, RP)
