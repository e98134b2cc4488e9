"""OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414) and the JWKS."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from idp import scopes
from idp.context import ACR_ORDER, idp
from idp.keys import ALGS, JWKS_MAX_AGE_S

bp = Blueprint("discovery", __name__)


def metadata() -> dict:
    ctx = idp()
    e = ctx.endpoint
    acrs = [a for a in ACR_ORDER if ctx.settings.production is False or a != ACR_ORDER[0]]
    return {
        "issuer": ctx.issuer,
        "authorization_endpoint": e("/authorize"),
        "token_endpoint": e("/token"),
        "userinfo_endpoint": e("/userinfo"),
        "jwks_uri": e("/jwks"),
        "revocation_endpoint": e("/revoke"),
        "introspection_endpoint": e("/introspect"),
        "pushed_authorization_request_endpoint": e("/par"),
        "end_session_endpoint": e("/logout"),
        "registration_endpoint": e("/register"),
        # The portal's account deletion (idp/endpoints/person_erase.py): not a standard.
        "phr_person_erase_endpoint": e("/person/erase"),
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "scopes_supported": [
            *sorted(scopes.OIDC_SCOPES | scopes.SMART_CONTEXT_SCOPES),
            "patient/*.rs",
            "user/*.rs",
            "system/*.write",
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": list(ALGS),
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
        ],
        "acr_values_supported": acrs,
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["ja", "en"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        # `request_uri` works only with the URNs /par hands out (RFC 9126), never a request
        # object fetched by reference (RFC 9101): that is what this flag is about.
        "request_uri_parameter_supported": False,
        "require_pushed_authorization_requests": False,
        "authorization_response_iss_parameter_supported": True,
        "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
    }


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> ResponseReturnValue:
    resp = jsonify(metadata())
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.get("/.well-known/oauth-authorization-server")
def oauth_metadata() -> ResponseReturnValue:
    resp = jsonify(metadata())
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.get("/jwks")
def jwks() -> ResponseReturnValue:
    resp = jsonify(idp().keys.jwks())
    resp.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_S}"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp
