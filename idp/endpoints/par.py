"""Pushed authorization requests (RFC 9126): the client posts the request over an authenticated
back channel and gets a short-lived, single-use `request_uri` for the browser."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from idp import federation
from idp.client_auth import attempts, authenticate
from idp.context import PAR_TTL, idp
from idp.endpoints import authorize as az
from idp.errors import OAuthError, invalid_client, invalid_request
from idp.models import AuthRequest
from idp.tokens import new_handle, now_utc

bp = Blueprint("par", __name__)


@bp.post("/par")
def par() -> ResponseReturnValue:
    ctx = idp()
    tries = attempts()  # the token endpoint's limits (idp.limits)
    try:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise invalid_request("send the request as application/x-www-form-urlencoded")
        if "request_uri" in request.form:
            raise invalid_request("request_uri cannot be pushed")
        # OpenID Federation automatic registration (idp/federation.py), committed in its own
        # transaction: client authentication records the assertion's jti in another one.
        with ctx.db.session() as s:
            tries.check_claimed(s)  # before any work, the federation's included
        try:
            with ctx.db.session() as s:
                federation.register_for_assertion(s, ctx.settings, request.form)
        except federation.RegistrationRefused as exc:
            raise invalid_client(str(exc)) from None
        with ctx.db.session() as s:
            client = authenticate(
                s,
                request.form,
                request.headers,
                [ctx.endpoint("/par"), ctx.issuer],
                allow_public=True,
                attempts=tries,
            )
            params = {
                k: v
                for k, v in request.form.items()
                if not k.startswith(("client_secret", "client_assertion", "_"))
            }
            params["client_id"] = client.client_id
            req = az.AuthzRequest(params=params)
            try:
                for first in (az.check_client, az.check_redirect_uri):
                    first(s, req)
            except az.PageError as err:
                raise invalid_request(str(err)) from None
            for check in az.AFTER_REDIRECT:
                check(s, req)
            rid = new_handle(24)
            s.add(
                AuthRequest(
                    id=rid,
                    client_id=client.client_id,
                    params=params,
                    pushed=True,
                    expires_at=now_utc() + PAR_TTL,
                )
            )
    except OAuthError as err:
        tries.record(err)
        return err.json_response()
    resp = jsonify(request_uri=az.PAR_PREFIX + rid, expires_in=int(PAR_TTL.total_seconds()))
    resp.status_code = 201
    resp.headers["Cache-Control"] = "no-store"
    return resp
