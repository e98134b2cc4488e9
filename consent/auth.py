"""Bearer access tokens on the consent API (RFC 6750), verified with the platform's one
verifier (phr_core.tokens): issuer = PHR_ISSUER, audience = this service's public URL, keys
from the issuer's `/jwks`. Each route names the scopes it accepts; connector routes also need
the token's `municipality` claim to equal the city in the path.

Tokens of another OpenID provider that chains to the federation's anchor (a city-run IdP) are
accepted too (federation.resource), on the routes marked `federated`: those an IdP needs to
record and check its people's grants and city links. Every subject such a caller names is
namespaced `<issuer>#<sub>` before anything looks it up (the PHR server namespaces that IdP's
access tokens the same way), so an IdP reaches its own people's consents and no one else's."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, g, jsonify, request

from federation.resource import FederatedVerifier
from federation.resource import for_settings as federated_verifier
from phr_core import outbound
from phr_core.sealing import OpeningKeys
from phr_core.tokens import (
    AccessToken,
    AccessTokenVerifier,
    InvalidToken,
    JwksCache,
)
from phr_core.webapp import settings

F = TypeVar("F", bound=Callable[..., Any])

REALM = "phr-consent"
MAX_SUBJECT = 255  # consent_record.subject


def verifier() -> FederatedVerifier:
    """One verifier (and JWKS cache) per app, made on first use: the home IdP's tokens, and
    those of the federation's other OpenID providers; sealed to this service's own key or, from
    an IdP that found no key of ours, under the shared PHR_ACCESS_TOKEN_KEY."""
    v = current_app.extensions.get("consent_verifier")
    if v is None:
        cfg = settings()
        sealing = OpeningKeys(cfg, "CONSENT")  # read again after a rotation
        home = AccessTokenVerifier(
            cfg.issuer,
            cfg.urls["consent"],
            JwksCache(cfg.issuer + "/jwks", outbound=outbound.for_settings(cfg)),
            sealing,
        )
        v = federated_verifier(cfg, home, sealing)
        current_app.extensions["consent_verifier"] = v
    return v


def foreign_issuer(at: AccessToken) -> str | None:
    """The issuer of a token from another OpenID provider of the federation, else None."""
    iss = at.claims.get("iss")
    return iss if isinstance(iss, str) and iss != settings().issuer else None


def namespaced(subject: str, at: AccessToken | None = None) -> str:
    """A subject as this service keys it: another provider's as `<issuer>#<sub>`."""
    iss = foreign_issuer(at or caller())
    return f"{iss}#{subject}" if iss else subject


def in_callers_namespace(subject: str) -> bool:
    """May the caller see a consent of `subject`? A foreign IdP only its own people's."""
    iss = foreign_issuer(caller())
    return iss is None or subject.startswith(iss + "#")


def recorder() -> str:
    """Who records a change (`recorded_by`): the client, namespaced for another provider's."""
    at = caller()
    iss = foreign_issuer(at)
    return f"{iss}#{at.client_id}" if iss else at.client_id


def oauth_error(status: int, error: str, description: str, **challenge: str) -> Response:
    """An RFC 6749/6750 error body; 401 and 403 carry a WWW-Authenticate challenge."""
    resp = jsonify(error=error, error_description=description)
    resp.status_code = status
    if status in (401, 403):
        params = {"realm": REALM}
        if error != "invalid_request" or status != 401:
            params["error"] = error
            params["error_description"] = description
        params.update(challenge)
        resp.headers["WWW-Authenticate"] = "Bearer " + ", ".join(
            f'{k}="{v}"' for k, v in params.items()
        )
    resp.headers["Cache-Control"] = "no-store"
    return resp


def require(
    *scopes: str, municipality_arg: str | None = None, federated: bool = False
) -> Callable[[F], F]:
    """Accept the request when its token is valid and carries any one of `scopes`. Only
    `federated` routes take tokens of the federation's other providers; their `subject` path
    argument is namespaced (see the module's docstring)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            kind, _, token = header.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                resp = oauth_error(401, "invalid_request", "a bearer access token is required")
                # RFC 6750 §3.1: no error code when the request carried no credentials at all.
                resp.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
                return resp
            try:
                at: AccessToken = verifier().verify(token.strip())
            except InvalidToken as exc:
                return oauth_error(401, "invalid_token", str(exc))
            if not at.scopes & set(scopes):
                return oauth_error(
                    403,
                    "insufficient_scope",
                    "the token lacks the scope this call needs",
                    scope=" ".join(scopes),
                )
            foreign = foreign_issuer(at)
            if foreign is not None and not federated:
                return oauth_error(
                    403, "insufficient_scope", "this call is for the home IdP's clients only"
                )
            if municipality_arg is not None and at.municipality != kwargs.get(municipality_arg):
                return oauth_error(
                    403, "insufficient_scope", "the token is for another municipality"
                )
            subject = kwargs.get("subject")
            if subject is not None and not 0 < len(subject) <= MAX_SUBJECT:
                return oauth_error(400, "invalid_request", "the subject in the path is too long")
            if subject is not None and foreign is not None:
                kwargs["subject"] = f"{foreign}#{subject}"
                if len(kwargs["subject"]) > MAX_SUBJECT:
                    return oauth_error(400, "invalid_request", "the subject is too long")
            g.access_token = at
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the view's signature

    return decorate


def caller() -> AccessToken:
    """The verified token of the current API request."""
    return g.access_token
