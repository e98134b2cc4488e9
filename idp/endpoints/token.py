"""Token endpoint (RFC 6749 3.2): authorization_code with PKCE, refresh_token with rotation and
reuse detection, client_credentials for system clients. Errors are RFC 6749 5.2 JSON."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from federation import directory
from idp import link_attributes, pkce, scopes
from idp.client_auth import attempts, authenticate, require_confidential
from idp.clients import ClientView
from idp.context import IdP, idp
from idp.dpop import proof_jkt
from idp.errors import OAuthError, invalid_grant, invalid_request
from idp.grants import GrantUnavailable, wants_patient
from idp.models import AuthorizationCode, Grant, RefreshToken
from idp.orm import rowcount
from idp.rows import row_by_key, table_of
from idp.tokens import (
    access_token,
    aware,
    id_token,
    new_handle,
    now_utc,
    refresh_token,
    revoke_family,
    sha256_hex,
)
from phr_core.pairwise_ids import for_key

bp = Blueprint("token", __name__)

# Single-use claims, built once: a third of the CPU of the same UPDATE through the ORM.
_CODES = table_of(AuthorizationCode)
_CLAIM_CODE = (
    update(_CODES)
    .where(_CODES.c.code_hash == bindparam("b_key"), _CODES.c.used_at.is_(None))
    .values(used_at=bindparam("b_used_at"), family_id=bindparam("b_family"))
)
_REFRESH = table_of(RefreshToken)
_CLAIM_REFRESH = (
    update(_REFRESH)
    .where(_REFRESH.c.token_hash == bindparam("b_key"), _REFRESH.c.used_at.is_(None))
    .values(used_at=bindparam("b_used_at"))
)


@bp.post("/token")
def token() -> Response:
    ctx = idp()
    tries = attempts()  # idp.limits: per source, per claimed client and source, per client
    try:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise invalid_request("send the request as application/x-www-form-urlencoded")
        form = request.form
        with ctx.db.session() as s:
            client = authenticate(
                s, form, request.headers, [ctx.endpoint("/token"), ctx.issuer],
                allow_public=True, attempts=tries,
            )  # fmt: skip
            grant_type = form.get("grant_type", "")
            handler = GRANTS.get(grant_type)
            g.dpop_jkt = proof_jkt(ctx, ctx.endpoint("/token"))
            if g.dpop_jkt is None and client.meta.get("dpop_bound_access_tokens"):
                raise OAuthError("invalid_dpop_proof", "this client must send a DPoP proof")
            if handler is None:
                raise OAuthError(
                    "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
                )
            if grant_type not in client.grant_types:
                raise OAuthError("unauthorized_client", f"this client may not use {grant_type}")
            body = handler(ctx, s, client)
    except OAuthError as err:
        tries.record(err)
        return err.json_response()
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp


def _revoke_now(ctx: IdP, family_id: str) -> None:
    """Revoke in a transaction of its own: it must stick although the request fails."""
    with ctx.db.session() as s:
        revoke_family(s, family_id)


def resolve_audience(ctx: IdP, scope: list[str], resource: str | None) -> str:
    """The one resource server this token is for (RFC 8707 `resource`, else by scope)."""
    kinds = {k for k in (scopes.audience_kind(sc) for sc in scope) if k}
    known = {ctx.audience("fhir"): "fhir", ctx.audience("consent"): "consent"}
    if resource:
        url = resource.rstrip("/")
        if url in known:
            return url
        # Another municipality's PHR server, known through the federation (issue 8).
        server = directory.of_app(current_app).by_resource(url)
        if server is None:
            raise OAuthError("invalid_target", "unknown resource")
        if kinds - {"fhir"}:
            raise OAuthError("invalid_target", "these scopes are not for a PHR server")
        return server.resource
    if len(kinds) > 1:
        raise OAuthError(
            "invalid_target", "scopes of several resource servers: ask with `resource` for each"
        )
    return ctx.audience(kinds.pop()) if kinds else ctx.issuer


def _authorization_code(ctx: IdP, s: Session, client: ClientView) -> dict:
    form = request.form
    code = form.get("code", "")
    if not code:
        raise invalid_request("code is required")
    row = row_by_key(s, AuthorizationCode, sha256_hex(code))
    if row is None or row.client_id != client.client_id:
        raise invalid_grant("the code is not valid for this client")
    if row.used_at is not None:
        if row.family_id:
            _revoke_now(ctx, row.family_id)
        raise invalid_grant("the code was already used; tokens issued with it are revoked")
    if aware(row.expires_at) < now_utc():
        raise invalid_grant("the code has expired")
    if form.get("redirect_uri") != row.redirect_uri:
        raise invalid_grant("redirect_uri does not match the authorization request")
    verifier = form.get("code_verifier", "")
    if not verifier:
        raise invalid_grant("code_verifier is required (PKCE)")
    if not pkce.verify(verifier, row.code_challenge):
        raise invalid_grant("code_verifier does not match the code_challenge")
    if row.dpop_jkt and g.dpop_jkt != row.dpop_jkt:
        raise OAuthError("invalid_dpop_proof", "the DPoP key is not the one named by dpop_jkt")
    family_id = new_handle(16)
    claimed = s.execute(
        _CLAIM_CODE, {"b_key": row.code_hash, "b_used_at": now_utc(), "b_family": family_id}
    )
    if rowcount(claimed) != 1:  # a concurrent request redeemed it first
        raise invalid_grant("the code was already used")
    scope = row.scope.split()
    body = _issue(
        ctx, s, client, scope,
        person_id=row.person_id, grant_id=row.grant_id, family_id=family_id, nonce=row.nonce,
        sid=row.sid, auth_time=aware(row.auth_time), acr=row.acr, amr=row.amr,
        jkt=g.dpop_jkt, resource=form.get("resource"),
    )  # fmt: skip
    # The portal linking a city: card-verified attributes, back channel only (link_attributes).
    body.update(
        link_attributes.for_portal(
            s, client, row.person_id, row.acr, form.get(link_attributes.FORM_PARAM)
        )
    )
    return body


def _refresh_token(ctx: IdP, s: Session, client: ClientView) -> dict:
    form = request.form
    presented = form.get("refresh_token", "")
    if not presented:
        raise invalid_request("refresh_token is required")
    row = row_by_key(s, RefreshToken, sha256_hex(presented))
    if row is None or row.client_id != client.client_id:
        raise invalid_grant("the refresh token is not valid for this client")
    if row.revoked_at is not None:
        raise invalid_grant("the refresh token was revoked")
    if row.used_at is not None:
        # Reuse of a rotated token: someone holds a copy. Revoke the whole family.
        _revoke_now(ctx, row.family_id)
        raise invalid_grant("the refresh token was already used; the session is revoked")
    if aware(row.expires_at) < now_utc():
        raise invalid_grant("the refresh token has expired")
    if row.grant_id:
        grant = s.get(Grant, row.grant_id)
        try:
            active = grant is not None and ctx.grants.is_active(ctx, s, grant)
        except GrantUnavailable:
            raise OAuthError("temporarily_unavailable", "try again shortly", 503) from None
        if not active:
            _revoke_now(ctx, row.family_id)
            raise invalid_grant("the person withdrew this app's access")
    if row.dpop_jkt and g.dpop_jkt != row.dpop_jkt:
        # RFC 9449 5: a public client's refresh token only works with its DPoP key.
        raise OAuthError("invalid_dpop_proof", "the refresh token is bound to another DPoP key")
    granted = row.scope.split()
    if not client.first_party and scopes.app_scope_refusal(granted):
        # Issued before apps were held to patient/ scopes (issue 14): never renewed.
        _revoke_now(ctx, row.family_id)
        raise invalid_grant(
            "this refresh token's user/ scopes are no longer granted to apps; "
            "ask the person again with patient/ scopes"
        )
    asked = form.get("scope")
    scope = asked.split() if asked else granted
    if not set(scope) <= set(granted):
        raise OAuthError("invalid_scope", "a refresh may only narrow the granted scope")
    claimed = s.execute(_CLAIM_REFRESH, {"b_key": row.token_hash, "b_used_at": now_utc()})
    if rowcount(claimed) != 1:
        _revoke_now(ctx, row.family_id)
        raise invalid_grant("the refresh token was already used; the session is revoked")
    return _issue(
        ctx, s, client, scope,
        person_id=row.person_id, grant_id=row.grant_id, family_id=row.family_id, nonce=None,
        sid=row.sid, auth_time=aware(row.auth_time), acr=row.acr, amr=row.amr,
        jkt=g.dpop_jkt, resource=form.get("resource"), keep_scope=granted,
    )  # fmt: skip


def _client_credentials(ctx: IdP, s: Session, client: ClientView) -> dict:
    require_confidential(client)
    allowed = {sc for sc in client.allowed_scopes if sc not in scopes.OIDC_SCOPES}
    asked = request.form.get("scope")
    scope = asked.split() if asked else sorted(allowed)
    if not scope or not set(scope) <= allowed:
        raise OAuthError("invalid_scope", "scope not allowed for this client")
    audience = resolve_audience(ctx, scope, request.form.get("resource"))
    token, expires_in = access_token(
        ctx, s, client, audience=audience, scope=" ".join(scope), person_id=None, jkt=g.dpop_jkt
    )
    return {
        "access_token": token,
        "token_type": "DPoP" if g.dpop_jkt else "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(scope),
    }


def _issue(
    ctx: IdP,
    s: Session,
    client: ClientView,
    scope: list[str],
    *,
    person_id: str,
    grant_id: str | None,
    family_id: str,
    nonce: str | None,
    sid: str | None,
    auth_time: datetime,
    acr: str,
    amr: list[str],
    jkt: str | None,
    resource: str | None,
    keep_scope: list[str] | None = None,
) -> dict:
    audience = resolve_audience(ctx, scope, resource)
    patient = _launch_patient(s, grant_id, scope)
    # An app under a consent grant sees the PHR servers' ids in its sector's terms (issue 14).
    sector_key = ctx.subjects.id_key(s, client.sector) if grant_id else None
    at, expires_in = access_token(
        ctx, s, client, audience=audience, scope=" ".join(scope), person_id=person_id,
        grant_id=grant_id, family_id=family_id, jkt=jkt, acr=acr, patient=patient,
        first_party=client.first_party and grant_id is None, sector_key=sector_key,
    )  # fmt: skip
    body: dict = {
        "access_token": at,
        "token_type": "DPoP" if jkt else "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(scope),
    }
    if patient:
        # SMART App Launch: the record `patient/` scopes open, as the app's sector's id of it
        # (the one its reads at any PHR server answer to; the real id stays in the token).
        body["patient"] = for_key(sector_key).out("Patient", patient) if sector_key else patient
    if "openid" in scope:
        body["id_token"] = id_token(
            ctx, s, client, person_id, auth_time=auth_time, acr=acr, amr=amr,
            nonce=nonce, sid=sid, access_token=at,
        )  # fmt: skip
    if "offline_access" in (keep_scope or scope) and "refresh_token" in client.grant_types:
        rt_scope = " ".join(keep_scope or scope)
        body["refresh_token"] = refresh_token(
            s, client, family_id=family_id, person_id=person_id, scope=rt_scope,
            grant_id=grant_id, sid=sid, auth_time=auth_time, acr=acr, amr=amr,
            jkt=jkt if client.is_public else None,
        )  # fmt: skip
    return body


def _launch_patient(s: Session, grant_id: str | None, scope: list[str]) -> str | None:
    """The Patient the person chose on the consent screen, when `patient/` scopes are granted."""
    if not grant_id or not wants_patient(scope):
        return None
    grant = s.get(Grant, grant_id)
    return grant.patient if grant is not None else None


GRANTS = {
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
    "client_credentials": _client_credentials,
}
