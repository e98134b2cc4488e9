"""Bearer access tokens on the consent API (RFC 6750), verified with the platform's one
verifier (phr_core.tokens): issuer = PHR_ISSUER, audience = this service's public URL, keys
from the issuer's `/jwks`. Each route names the scopes it accepts; connector routes also need
the token's `municipality` claim to equal the city in the path."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, g, jsonify, request

from phr_core.tokens import (
    AccessToken,
    AccessTokenVerifier,
    InvalidToken,
    JwksCache,
    access_token_cipher,
)
from phr_core.webapp import settings

F = TypeVar("F", bound=Callable[..., Any])

REALM = "phr-consent"
MAX_SUBJECT = 255  # consent_record.subject


def verifier() -> AccessTokenVerifier:
    """One verifier (and JWKS cache) per app, made on first use."""
    v = current_app.extensions.get("consent_verifier")
    if v is None:
        cfg = settings()
        v = AccessTokenVerifier(
            cfg.issuer,
            cfg.urls["consent"],
            JwksCache(cfg.issuer + "/jwks"),
            decryption_key=access_token_cipher(cfg.secret("PHR_ACCESS_TOKEN_KEY")),
        )
        current_app.extensions["consent_verifier"] = v
    return v


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


def require(*scopes: str, municipality_arg: str | None = None) -> Callable[[F], F]:
    """Accept the request when its token is valid and carries any one of `scopes`."""

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
            if municipality_arg is not None and at.municipality != kwargs.get(municipality_arg):
                return oauth_error(
                    403, "insufficient_scope", "the token is for another municipality"
                )
            subject = kwargs.get("subject")
            if subject is not None and not 0 < len(subject) <= MAX_SUBJECT:
                return oauth_error(400, "invalid_request", "the subject in the path is too long")
            g.access_token = at
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def caller() -> AccessToken:
    """The verified token of the current API request."""
    return g.access_token
