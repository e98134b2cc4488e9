"""Entity configurations of the platform's services at `/.well-known/openid-federation`
(OpenID Federation 1.0 section 9), each signed with the service's own federation key and
naming the federation authority (PHR_FEDERATION_URL) as its superior.

`phr_core.webapp.build_app` registers `blueprint()` in every service; what each one says about
itself is below (the IdP's OpenID provider metadata comes from `idp.federation`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue

from federation import keys
from federation.authority.policies import CONFIGURATION_LIFETIME_S
from federation.entity import statement
from phr_core import receipt_keys, sealing
from phr_core.config import Settings

Metadata = dict[str, dict[str, Any]]


def _fhir(s: Settings) -> Metadata:
    return {
        "oauth_resource": {
            "resource": s.urls["fhir"],
            "authorization_servers": [s.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "PHR FHIR R4 server (secure DB)",
            # Whose records it holds (federation.directory); its superior may narrow the list.
            "phr_municipalities": s.option("PHR_FHIR_MUNICIPALITIES").split(),
            "jwks": sealing.published_jwks(s, "FHIR"),  # IdPs seal its access tokens to it
        }
    }


def _consent(s: Settings) -> Metadata:
    return {
        "openid_relying_party": {
            "client_id": s.option("PHR_CONSENT_CLIENT_ID"),
            "client_name": "PHR citizen portal",
            "redirect_uris": [s.urls["consent"] + "/auth/callback"],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            # No client_registration_types: it is a static client of the IdP, registered by
            # configuration, neither automatically nor explicitly through the federation.
        },
        "oauth_resource": {
            "resource": s.urls["consent"] + "/api",
            "authorization_servers": [s.issuer],
            "bearer_methods_supported": ["header"],
            "jwks": sealing.published_jwks(s, "CONSENT"),  # IdPs seal its access tokens to it
        },
        # Its consent-receipt keys (docs/receipts.md), vouched for by the federation as well as
        # served at the JWKS URL.
        "phr_consent_receipts": {
            "jwks_uri": receipt_keys.jwks_url(s),
            "jwks": receipt_keys.published_jwks(s),
        },
    }


def _connector(s: Settings) -> Metadata:
    return {
        "oauth_client": {
            "client_id": s.option("PHR_CONNECTOR_CLIENT_ID"),
            "grant_types": ["client_credentials"],
            "phr_municipality": s.option("PHR_CONNECTOR_MUNICIPALITY"),
        }
    }


def _idp(s: Settings) -> Metadata:
    module = importlib.import_module("idp.federation")
    return module.openid_provider_metadata(s)


BUILDERS: dict[str, Callable[[Settings], Metadata]] = {
    "idp": _idp,
    "fhir": _fhir,
    "consent": _consent,
    "connector": _connector,
}

ORGANIZATION = {
    "idp": "PHR OpenID provider",
    "fhir": "PHR server",
    "consent": "PHR consent service and portal",
    "connector": "Municipal connector",
}


def entity_configuration(settings: Settings, service_name: str) -> str:
    """The signed entity configuration of one of our services."""
    metadata = BUILDERS[service_name](settings)
    metadata["federation_entity"] = {"organization_name": ORGANIZATION[service_name]}
    return statement.sign_configuration(
        settings.urls[service_name],
        keys.entity_key(settings, service_name),
        metadata,
        published=keys.entity_keys(settings, service_name),
        authority_hints=keys.authority_hints(settings, service_name),
        lifetime_s=CONFIGURATION_LIFETIME_S,
    )


def blueprint(service_name: str) -> Blueprint:
    bp = Blueprint(f"federation_entity_{service_name}", __name__)

    @bp.get(statement.WELL_KNOWN)
    def configuration() -> ResponseReturnValue:
        token = entity_configuration(current_app.extensions["phr_settings"], service_name)
        resp = Response(token, mimetype=statement.MEDIA_TYPE)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return bp
