"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), gated by an
initial access token. Every registered client gets pairwise subjects: its sector is its
redirect host, or the host of a `sector_identifier_uri` that lists every redirect URI, and it
cannot change once a person has signed in."""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp import scopes
from idp.clients import hash_secret, sector_for, validate_metadata
from idp.context import IdP, idp
from idp.errors import OAuthError, shown
from idp.models import Client, InitialAccessToken
from idp.orm import rowcount
from idp.tokens import aware, new_handle, now_utc, sha256_hex
from phr_core import outbound
from phr_core.config import is_loopback_host

bp = Blueprint("registration", __name__)

# Only an operator may put a client in a named sector, a municipality or a resource server.
STATIC_ONLY = (
    *("phr_sector", "phr_municipality", "phr_resource_urls", "phr_required_acr"),
    "phr_first_party",
)
DEFAULT_SCOPE = "openid"


def _json_error(error: str, description: str, status: int = 400) -> Response:
    return OAuthError(error, description, status).json_response()


def _bearer() -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def _spend_initial_token(s: Session, token: str) -> bool:
    spent = s.execute(
        update(InitialAccessToken)
        .where(
            InitialAccessToken.token_hash == sha256_hex(token),
            InitialAccessToken.uses_left > 0,
            InitialAccessToken.expires_at > now_utc(),
        )
        .values(uses_left=InitialAccessToken.uses_left - 1)
    )
    return rowcount(spent) == 1


def _check_sector_identifier(ctx: IdP, meta: dict[str, Any]) -> None:
    uri = meta.get("sector_identifier_uri")
    if not uri:
        return
    parts = urlsplit(uri)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and is_loopback_host(parts.hostname) and not ctx.settings.production
    ):
        raise OAuthError("invalid_client_metadata", "sector_identifier_uri must use https")
    try:  # within phr_core.outbound's bounds: no internal address in production
        resp = outbound.for_settings(ctx.settings).get(uri, accept="application/json")
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        listed = json.loads(resp.body)
    except (OSError, ValueError):
        raise OAuthError(
            "invalid_client_metadata", "sector_identifier_uri could not be fetched as JSON"
        ) from None
    missing = [u for u in meta.get("redirect_uris", []) if u not in listed]
    if not isinstance(listed, list) or missing:
        raise OAuthError(
            "invalid_redirect_uri", "sector_identifier_uri does not list every redirect URI"
        )


def purpose_given(meta: dict[str, Any]) -> bool:
    """Does the metadata say why the app wants data (`purpose`, or a localized `purpose#xx`)?
    A parent cannot weigh a request without it, so dynamic registration refuses an app that
    gives none (clients an operator registers are shown flagged instead)."""
    return any(
        isinstance(value, str) and value.strip()
        for key, value in meta.items()
        if key.split("#", 1)[0] == "purpose"
    )


def _clean(ctx: IdP, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OAuthError("invalid_client_metadata", "the body must be a JSON object")
    meta = {k: v for k, v in body.items() if k not in ("client_id", "client_secret")}
    for key in STATIC_ONLY:
        if key in meta:
            raise OAuthError("invalid_client_metadata", f"{key} can only be set by an operator")
    if meta.get("subject_type", "pairwise") != "pairwise":
        raise OAuthError(
            "invalid_client_metadata",
            f"only pairwise subjects are offered (got subject_type {shown(meta['subject_type'])})",
        )
    meta.setdefault("grant_types", ["authorization_code"])
    meta.setdefault("response_types", ["code"])
    meta.setdefault("token_endpoint_auth_method", "client_secret_basic")
    meta.setdefault("scope", DEFAULT_SCOPE)
    meta["subject_type"] = "pairwise"
    try:
        validate_metadata(meta)
    except ValueError as exc:
        code = "invalid_redirect_uri" if "redirect_uri" in str(exc) else "invalid_client_metadata"
        raise OAuthError(code, str(exc)) from None
    if not purpose_given(meta):
        raise OAuthError(
            "invalid_client_metadata",
            "purpose is required: one sentence saying why the app needs the person's data, "
            "shown on the consent screen and in the portal (purpose, purpose#en)",
        )
    asked = str(meta["scope"]).split()
    system = [sc for sc in asked if sc.startswith("system/")]
    if system:
        raise OAuthError(
            "invalid_client_metadata",
            f"scope {shown(system[0])}: system scopes are registered by an operator",
        )
    refusal = scopes.app_scope_refusal(asked)  # a registered app is never the portal
    if refusal:
        raise OAuthError("invalid_client_metadata", refusal)
    if "client_credentials" in meta["grant_types"]:
        raise OAuthError("invalid_client_metadata", "system clients are registered by an operator")
    if meta["response_types"] != ["code"]:
        raise OAuthError("invalid_client_metadata", "only response_types [code] is supported")
    _check_sector_identifier(ctx, meta)
    try:
        sector_for(meta)
    except ValueError as exc:
        raise OAuthError("invalid_redirect_uri", str(exc)) from None
    return meta


def _response(ctx: IdP, row: Client, secret: str | None, rat: str | None, status: int) -> Response:
    body = {"client_id": row.client_id, **row.client_metadata}
    body["client_id_issued_at"] = int(aware(row.created_at).timestamp())
    if secret:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    if rat:
        body["registration_access_token"] = rat
    body["registration_client_uri"] = ctx.endpoint(f"/register/{row.client_id}")
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/register")
def register() -> ResponseReturnValue:
    ctx = idp()
    try:
        with ctx.db.session() as s:
            if not _spend_initial_token(s, _bearer()):
                raise OAuthError("invalid_token", "a valid initial access token is required", 401)
            meta = _clean(ctx, request.get_json(silent=True))
            client_id = "dyn-" + new_handle(12)
            secret = (
                None
                if meta["token_endpoint_auth_method"] in ("none", "private_key_jwt")
                else new_handle(32)
            )
            rat = new_handle(32)
            row = Client(
                client_id=client_id,
                client_name=str(meta.get("client_name") or client_id),
                registration="dynamic",
                sector=sector_for({**meta, "client_id": client_id}),
                client_metadata=meta,
                secret_hash=hash_secret(secret) if secret else None,
                registration_token_hash=sha256_hex(rat),
                created_at=now_utc(),
            )
            s.add(row)
            return _response(ctx, row, secret, rat, 201)
    except OAuthError as err:
        return err.json_response()


def _managed(s: Session, client_id: str) -> Client:
    row = s.get(Client, client_id)
    token = _bearer()
    if (
        row is None
        or row.registration != "dynamic"
        or not row.registration_token_hash
        or not hmac.compare_digest(row.registration_token_hash, sha256_hex(token))
    ):
        # RFC 7592 2: the same answer whether the client exists or not.
        raise OAuthError("invalid_token", "invalid registration access token", 401)
    return row


@bp.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def manage(client_id: str) -> ResponseReturnValue:
    ctx = idp()
    try:
        with ctx.db.session() as s:
            row = _managed(s, client_id)
            if request.method == "GET":
                return _response(ctx, row, None, None, 200)
            if request.method == "DELETE":
                s.delete(row)
                return Response(status=204)
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or body.get("client_id") != client_id:
                raise OAuthError("invalid_client_metadata", "the body must name this client_id")
            meta = _clean(ctx, body)
            sector = sector_for({**meta, "client_id": client_id})
            if row.sector_locked and sector != row.sector:
                raise OAuthError(
                    "invalid_client_metadata",
                    "the redirect host / sector cannot change after the first sign-in",
                )
            row.client_metadata = meta
            row.client_name = str(meta.get("client_name") or client_id)
            row.sector = sector
            return _response(ctx, row, None, None, 200)
    except OAuthError as err:
        return err.json_response()
