"""The IdP in the federation: its OpenID provider metadata for its entity configuration, and
automatic client registration (OpenID Federation 1.0 section 12.1): an app whose `client_id`
is its entity id, unknown here, is registered from its trust chain when it first sends a
request object signed with a key of its (policy-applied) metadata."""

from __future__ import annotations

from typing import Any

from phr_core.config import Settings


def openid_provider_metadata(settings: Settings) -> dict[str, dict[str, Any]]:
    from idp.endpoints import discovery

    md = discovery.metadata()
    md.update(
        client_registration_types_supported=["automatic"],
        request_parameter_supported=True,
        request_object_signing_alg_values_supported=["ES256", "RS256"],
        request_authentication_methods_supported={
            "authorization_endpoint": ["request_object"],
            "pushed_authorization_request_endpoint": ["private_key_jwt"],
        },
    )
    return {"openid_provider": md}
