"""Citizen sign-in: the portal is an OpenID Connect client of the platform's IdP.

Authorization code flow with PKCE (S256), `state` and `nonce`. Authlib builds the authorization
request and its PKCE challenge, and makes the token, refresh and revocation requests
(portal.idp_client, which says why their transport and client authentication stay ours). The
ID token is checked here with joserfc rather than Authlib's `parse_id_token`, which is less
strict: that takes the accepted algorithms from the IdP's discovery document (which a
federation member writes) and allows 120 s of clock skew; we pin ID_TOKEN_ALGS, allow 60 s, and
require `iss`, `aud` (with `azp` when there are several), `exp`, `sub` and our `nonce`, the
signature from the IdP's JWKS (fetched once more when the key is not found: a rotation).
Authlib's Flask client is not used either: its registry is fixed configuration, while the IdP
is chosen at sign-in from the federation (portal.providers).

The portal client is in the PHR sector, so the ID token's `sub` is the subject consent records
are keyed by. Only that `sub`, the ID token (for logout), a CSRF token and a random handle are
kept in the signed session cookie (portal.session); the access and refresh tokens for the PHR
server (scope PORTAL_SCOPE; the IdP marks them first-party, see portal/phr.py) stay server side
under that handle (portal.token_store), are refreshed there and dropped, and revoked at the
IdP, on sign-out. Tokens are never logged.

A city-run IdP of the federation can be offered too (portal.providers): the sign-in then goes
there, the portal authenticates with private_key_jwt, and the person's subject is
`<issuer>#<sub>` everywhere in the portal and the consent service.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import urllib.parse
from typing import Any

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, Response, current_app, redirect, request, session
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import JoseError

from consent.i18n import current_language
from phr_core import csrf
from phr_core.webapp import database, settings
from portal import idp_client, pages, providers, sources
from portal.idp_client import SignInError, provider
from portal.session import (
    ID_TOKEN,
    IDP,
    PENDING,
    RETURN_TO,
    SUBJECT,
    TOKENS,
    check_csrf,
    client_id,
    current_subject,
    safe_return,
    signed_in_issuer,
)
from portal.token_store import Tokens, TokensGone, TokenStore

log = logging.getLogger(__name__)
bp = Blueprint("portal_auth", __name__, url_prefix="/auth")

ID_TOKEN_ALGS = ["ES256", "RS256", "PS256", "EdDSA"]
# Sign-in, a refresh token, and reading (only) the person's own and children's records.
PORTAL_SCOPE = "openid offline_access user/*.rs"


def redirect_uri() -> str:
    return settings().urls["consent"] + "/auth/callback"


# --- Routes ---------------------------------------------------------------------------------------


@bp.get("/login")
def login() -> ResponseReturnValue:
    """Sign in at the chosen IdP (`?idp=`); a signed-in person signs in again at their own
    (a city consent needs the card attributes); otherwise the choice when there is one.
    `?next=` names the portal page to return to afterwards (a path here, else ignored)."""
    if "next" in request.args:
        target = safe_return(request.args["next"])
        if target is None:
            session.pop(RETURN_TO, None)
        else:
            session[RETURN_TO] = target
    issuer = request.args.get("idp", "").rstrip("/")
    if not issuer and current_subject() is not None:
        issuer = signed_in_issuer()
    if not issuer:
        offered = providers.offered()
        if len(offered) > 1:
            return pages.render("signin.html", providers=offered)
        issuer = offered[0].issuer
    if issuer != settings().issuer and providers.find(issuer) is None:
        raise SignInError("signin_failed")
    meta = provider(issuer)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    back = session.pop(RETURN_TO, None)
    session[PENDING] = {
        "state": state, "nonce": nonce, "verifier": verifier, "issuer": issuer, "next": back
    }  # fmt: skip
    return redirect(
        prepare_grant_uri(
            meta["authorization_endpoint"],
            client_id(),
            "code",
            redirect_uri=redirect_uri(),
            scope=PORTAL_SCOPE,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            ui_locales=current_language(),
        )
    )


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    # The pending sign-in is used once, whatever happens next: a replayed callback finds none.
    pending = session.pop(PENDING, None)
    if request.args.get("error"):
        key = "signin_cancelled" if request.args["error"] == "access_denied" else "signin_failed"
        raise SignInError(key)
    state = request.args.get("state", "")
    if (
        not isinstance(pending, dict)
        or not isinstance(pending.get("state"), str)
        or not hmac.compare_digest(state, pending["state"])
    ):
        raise SignInError("signin_expired")
    issuer = pending.get("issuer") or settings().issuer
    if issuer != settings().issuer and providers.find(issuer) is None:
        raise SignInError("signin_failed")  # removed from the federation meanwhile
    meta = provider(issuer)
    iss = request.args.get("iss")
    if iss is not None and iss != meta["issuer"]:  # RFC 9207
        raise SignInError("signin_failed")
    code = request.args.get("code", "")
    if not code:
        raise SignInError("signin_failed")
    link = sources.pending_link()  # a city consent waiting for the card attributes
    tokens = _exchange(meta, code, pending["verifier"], link_attributes=link is not None)
    old_issuer = signed_in_issuer()
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise SignInError("signin_failed")
    claims = _verify_id_token(meta, id_token, pending["nonce"])
    subject = providers.subject_of(issuer, claims["sub"])
    lang = current_language()
    old_handle = session.get(TOKENS)
    session.clear()
    if isinstance(old_handle, str):
        forget_tokens(old_handle, old_issuer)
    session[SUBJECT] = subject
    if issuer != settings().issuer:
        session[IDP] = issuer
    session[ID_TOKEN] = id_token
    csrf.renew()
    if isinstance(tokens.get("access_token"), str):
        try:
            stored = Tokens.from_response(tokens)
        except TokensGone:
            raise SignInError("signin_failed") from None
        store = token_store()
        store.purge_idle()  # sessions closed without sign-out, a day later
        session[TOKENS] = store.save(subject, stored)
    if link is not None:
        return redirect(sources.finish_link(subject, link, tokens.get("phr_card_attributes")))
    return redirect(safe_return(pending.get("next")) or f"/?lang={lang}")


def _exchange(
    meta: dict[str, Any], code: str, verifier: str, *, link_attributes: bool = False
) -> dict[str, Any]:
    extra = {"phr_card_attributes": "1"} if link_attributes else {}  # back channel only
    return idp_client.token_request(
        meta["issuer"],
        meta["token_endpoint"],
        "authorization_code",
        code=code,
        redirect_uri=redirect_uri(),
        code_verifier=verifier,
        **extra,
    )


def _verify_id_token(meta: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
    try:
        try:
            token = jwt.decode(id_token, idp_client.key_set(meta), algorithms=ID_TOKEN_ALGS)
        except JoseError:
            # Perhaps the IdP rotated its keys since we fetched them: ask once more.
            token = jwt.decode(
                id_token, idp_client.key_set(meta, fresh=True), algorithms=ID_TOKEN_ALGS
            )
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": meta["issuer"]},
            aud={"essential": True, "value": client_id()},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError, TypeError):
        log.warning("ID token refused")
        raise SignInError("signin_failed") from None
    claims = token.claims
    azp = claims.get("azp")
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp != client_id():
        raise SignInError("signin_failed")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise SignInError("signin_failed")
    return claims


# --- The server-side tokens for the PHR server ----------------------------------------------------


def token_store() -> TokenStore:
    app = current_app
    store = app.extensions.get("portal_tokens")
    if store is None:
        store = TokenStore(database(), settings().secret("PHR_CONSENT_SECRET_KEY"))
        app.extensions["portal_tokens"] = store
    return store


class ResourceRefused(Exception):
    """The IdP issues no token for this PHR server (the federation no longer vouches for it);
    the sign-in itself stays valid."""


def refresh_tokens(refresh_token: str, resource: str | None = None) -> dict[str, Any]:
    """The IdP's refresh grant (for another PHR server with RFC 8707 `resource`); a refused
    refresh token means signing in again."""
    meta = provider()
    extra = {"resource": resource} if resource is not None else {}
    try:
        return idp_client.token_request(
            meta["issuer"],
            meta["token_endpoint"],
            "refresh_token",
            refresh_token=refresh_token,
            **extra,
        )
    except SignInError as exc:
        if exc.status == 503:
            raise
        if exc.key == "invalid_target":
            raise ResourceRefused(resource or "") from None
        raise TokensGone("the IdP refused the refresh token") from None


def access_token(resource: str | None = None) -> str:
    """The signed-in person's access token for a PHR server (refreshed when due): the
    configured one, or the one at `resource` (its FHIR base URL). Raises TokensGone when there
    is none (signed out, expired, revoked)."""
    handle, subject = session.get(TOKENS), current_subject()
    if not isinstance(handle, str) or subject is None:
        raise TokensGone("not signed in")
    home = settings().urls["fhir"].rstrip("/")
    if resource is not None and resource.rstrip("/") == home:
        resource = None
    return token_store().access_token(handle, subject, refresh_tokens, resource=resource)


def forget_tokens(handle: str, issuer: str) -> None:
    """Drop a session's tokens here and revoke the refresh token (and so its family) at the
    IdP that issued it, best effort: the row is gone either way."""
    tokens = token_store().drop(handle)
    if tokens is None or not tokens.refresh_token:
        return
    idp_client.revoke_refresh_token(issuer, tokens.refresh_token)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    check_csrf()
    id_token = session.get(ID_TOKEN)
    handle = session.get(TOKENS)
    issuer = signed_in_issuer()
    lang = current_language()
    session.clear()
    if isinstance(handle, str):
        forget_tokens(handle, issuer)
    return redirect(end_session_url(issuer, id_token, lang) or "/")


def end_session_url(issuer: str, id_token: object, lang: str) -> str | None:
    """Where the browser ends its sign-in at the IdP too (OpenID Connect RP-Initiated Logout
    1.0), coming back to the portal's home; None when the IdP offers no end_session_endpoint
    or there is no ID token to name the sign-in by."""
    try:
        end = provider(issuer).get("end_session_endpoint")
    except SignInError:
        end = None
    if not isinstance(end, str) or not end or not isinstance(id_token, str):
        return None
    params = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": settings().urls["consent"] + "/",
        "client_id": client_id(),
        "ui_locales": lang,
    }
    return end + "?" + urllib.parse.urlencode(params)


def signin_error_page(exc: SignInError) -> Response:
    return pages.problem(exc.key, exc.status)


bp.register_error_handler(SignInError, signin_error_page)
