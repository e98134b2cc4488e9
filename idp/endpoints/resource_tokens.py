"""Endpoints that take a token back: userinfo (OIDC Core 5.3), introspection (RFC 7662) and
revocation (RFC 7009). Our access tokens are JWTs with a server-side record (jti), so a
revoked token is known here at once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import Row, update
from sqlalchemy.orm import Session

from idp.client_auth import attempts, authenticate, require_confidential
from idp.clients import ClientView, get_client
from idp.context import IdP, idp
from idp.dpop import proof_jkt
from idp.errors import OAuthError, invalid_request
from idp.limits import ClientAttempts
from idp.models import IssuedAccessToken, RefreshToken
from idp.rows import row_by_key
from idp.sealing import open_own
from idp.subjects import PHR_SECTOR
from idp.tokens import aware, now_utc, revoke_family, sha256_hex
from phr_core.tokens import InvalidToken

bp = Blueprint("resource_tokens", __name__)

INTROSPECTED_CLAIMS = (
    *("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti"),
    *("grant_id", "municipality", "cnf", "acr", "phr_first_party"),
)


def _verify_access_token(ctx: IdP, s: Session, token: str) -> tuple[dict, Row[Any]] | None:
    """Claims and record (idp.rows: its columns, read-only) of a valid, unrevoked access token
    we issued, else None."""
    try:
        signed = open_own(ctx, token)
        decoded = jwt.decode(signed, ctx.keys.verification_keys(), algorithms=["ES256", "RS256"])
    except (JoseError, ValueError, InvalidToken):
        return None
    if decoded.header.get("typ") != "at+jwt":
        return None
    claims = decoded.claims
    if claims.get("iss") != ctx.issuer or not isinstance(claims.get("exp"), int):
        return None
    if claims["exp"] < now_utc().timestamp():
        return None
    row = row_by_key(s, IssuedAccessToken, str(claims.get("jti", "")))
    if row is None or row.revoked_at is not None:
        return None
    return claims, row


def _presented() -> tuple[str, str]:
    """(scheme, token) from the Authorization header or, for POST, the form body."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("bearer", "dpop") and value.strip():
        return scheme.lower(), value.strip()
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return "bearer", request.form.get("access_token", "")
    return "bearer", ""


def _bearer_error(error: str, description: str, status: int = 401) -> Response:
    resp = jsonify(error=error, error_description=description)
    resp.status_code = status
    resp.headers["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    return resp


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    ctx = idp()
    scheme, token = _presented()
    if not token:
        resp = jsonify(error="invalid_request", error_description="bearer token required")
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="userinfo"'
        return resp
    with ctx.db.session() as s:
        found = _verify_access_token(ctx, s, token)
        if found is None:
            return _bearer_error("invalid_token", "the access token is not valid")
        claims, row = found
        bound = (claims.get("cnf") or {}).get("jkt")
        if bound or scheme == "dpop":
            try:
                jkt = proof_jkt(ctx, ctx.endpoint("/userinfo"), access_token=token)
            except OAuthError as err:
                return _bearer_error("invalid_token", err.description)
            if scheme != "dpop" or jkt != bound:
                return _bearer_error("invalid_token", "a DPoP-bound token needs its DPoP proof")
        if "openid" not in claims.get("scope", "").split() or row.person_id is None:
            return _bearer_error("insufficient_scope", "the token lacks the openid scope", 403)
        client = get_client(s, row.client_id)
        if client is None:
            return _bearer_error("invalid_token", "the client no longer exists")
        # The app's own pairwise subject, as in its ID token, not the PHR sector's.
        body = {"sub": ctx.subjects.subject(s, client.sector, row.person_id)}
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _authenticated_client(
    ctx: IdP, s: Session, tries: ClientAttempts, *, allow_public: bool = False
) -> ClientView:
    client = authenticate(
        s,
        request.form,
        request.headers,
        [ctx.endpoint(request.path), ctx.issuer],
        allow_public=allow_public,
        attempts=tries,
    )
    if not allow_public:
        require_confidential(client)
    return client


@bp.post("/introspect")
def introspect() -> ResponseReturnValue:
    ctx = idp()
    tries = attempts()  # the token endpoint's limits (idp.limits)
    try:
        with ctx.db.session() as s:
            client = _authenticated_client(ctx, s, tries)
            token = request.form.get("token", "")
            if not token:
                raise invalid_request("token is required")
            body = _introspect(ctx, s, client.client_id, token)
    except OAuthError as err:
        tries.record(err)
        return err.json_response()
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _introspect(ctx: IdP, s: Session, caller: str, token: str) -> dict:
    found = _verify_access_token(ctx, s, token)
    if found is not None:
        claims, row = found
        # Only the token's client or its audience (a resource server) may look at it.
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        caller_client = get_client(s, caller)
        resource_urls = caller_client.meta.get("phr_resource_urls", []) if caller_client else []
        if caller != row.client_id and not set(audiences) & set(resource_urls):
            return {"active": False}
        out = {k: claims[k] for k in INTROSPECTED_CLAIMS if k in claims}
        if caller == row.client_id and row.person_id is not None and caller_client is not None:
            # The app learns only its own pairwise subject, never the PHR sector's.
            out["sub"] = ctx.subjects.subject(s, caller_client.sector, row.person_id)
        out["active"] = True
        out["token_type"] = "Bearer"  # noqa: S105 (a token type, not a secret)
        return out
    rt = s.get(RefreshToken, sha256_hex(token))
    if (
        rt is None
        or rt.client_id != caller
        or rt.revoked_at is not None
        or rt.used_at is not None
        or aware(rt.expires_at) < now_utc()
    ):
        return {"active": False}
    client = get_client(s, rt.client_id)
    return {
        "active": True,
        "client_id": rt.client_id,
        "scope": rt.scope,
        "sub": ctx.subjects.subject(s, client.sector if client else PHR_SECTOR, rt.person_id),
        "exp": int(aware(rt.expires_at).timestamp()),
        "iss": ctx.issuer,
    }


@bp.post("/revoke")
def revoke() -> ResponseReturnValue:
    ctx = idp()
    tries = attempts()  # the token endpoint's limits (idp.limits)
    try:
        with ctx.db.session() as s:
            # Public clients revoke their own tokens with just their client_id (RFC 7009 2.1).
            client = _authenticated_client(ctx, s, tries, allow_public=True)
            token = request.form.get("token", "")
            if not token:
                raise invalid_request("token is required")
            rt = s.get(RefreshToken, sha256_hex(token))
            if rt is not None and rt.client_id == client.client_id:
                revoke_family(s, rt.family_id)  # the refresh token and everything from it
            else:
                found = _verify_access_token(ctx, s, token)
                if found is not None and found[1].client_id == client.client_id:
                    s.execute(
                        update(IssuedAccessToken)
                        .where(IssuedAccessToken.jti == found[1].jti)
                        .values(revoked_at=now_utc())
                    )
    except OAuthError as err:
        tries.record(err)
        return err.json_response()
    # RFC 7009 2.2: 200 whether or not the token was known.
    return Response(status=200)
