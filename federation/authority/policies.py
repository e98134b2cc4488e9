"""The rules this federation sets for every subordinate, as metadata policy (section 6.1).

Why these: every app and provider authenticates with keys, not shared secrets (the federation
carries no secrets); subjects are always pairwise; only the code flow; the scopes an app may
ask for stay within what the platform knows. A subordinate row can carry its own policy.
"""

from __future__ import annotations

import copy
from typing import Any

LEAF_POLICY: dict[str, dict[str, dict[str, Any]]] = {
    "openid_relying_party": {
        "token_endpoint_auth_method": {"one_of": ["private_key_jwt"], "default": "private_key_jwt"},
        "grant_types": {
            "subset_of": ["authorization_code", "refresh_token"],
            "default": ["authorization_code"],
        },
        "response_types": {"subset_of": ["code"], "default": ["code"]},
        "subject_type": {"value": "pairwise"},
        "id_token_signed_response_alg": {"one_of": ["ES256", "RS256"], "default": "ES256"},
        "redirect_uris": {"essential": True},
        "jwks": {"essential": True},
    },
    "openid_provider": {
        "subject_types_supported": {"value": ["pairwise"]},
    },
}

# An intermediate (a prefecture) may have leaves below it, not further intermediates:
# max_path_length counts the intermediates between the constraining authority and the leaf,
# and the prefecture itself is one.
INTERMEDIATE_CONSTRAINTS: dict[str, Any] = {"max_path_length": 1}

# Subordinate statements are short-lived so a removed entity stops being trusted soon even by
# verifiers that never ask again; a revocation is seen at once by those that do.
STATEMENT_LIFETIME_S = 3600
CONFIGURATION_LIFETIME_S = 3600

# The platform's own services (IdP, PHR servers, portal, connectors): the portal is a static,
# first-party client of the IdP with a client secret, never automatically registered, so the
# relying-party rules for third-party apps do not apply to it; the provider rule does.
PLATFORM_SERVICE_POLICY: dict[str, dict[str, dict[str, Any]]] = {
    "openid_provider": LEAF_POLICY["openid_provider"],
}


def municipalities_policy(base: dict[str, Any] | None, codes: list[str]) -> dict[str, Any]:
    """`base` (default: the federation's rules) plus: the PHR server may claim only `codes` as
    the municipalities whose records it holds (`oauth_resource.phr_municipalities`)."""
    policy: dict[str, Any] = copy.deepcopy(LEAF_POLICY if base is None else base)
    policy.setdefault("oauth_resource", {})["phr_municipalities"] = {"subset_of": list(codes)}
    return policy
