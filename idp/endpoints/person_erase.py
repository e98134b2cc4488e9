"""`POST /person/erase`: the platform's portal asks the IdP to forget a person who deleted their
account (idp.erasure says what goes and what stays; docs/retention.md).

Only a first-party client may ask (the portal, `phr_first_party`), authenticated as at the
token endpoint, and only for a person it holds an ID token of: `id_token_hint` is an ID token
this IdP signed for that client (expired is fine: the portal keeps it for logout, as
RP-Initiated Logout accepts), and not any other JWT it signed for the client (a back-channel
logout token). The person is found by the token's `sid`, which must name a sign-in that still
lives (a login session not ended, or a live refresh token of this client), and `sub`: an ended
sign-in's leftover ID token erases nobody. The answer is 200 `{"erased": true|false}`: false
when that sign-in or person no longer exists, so the portal's retry after a lost answer
succeeds. Every sign-in of the person is ended first, with back-channel logout to every app
that got tokens in it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import JoseError

from idp.client_auth import attempts, authenticate, require_confidential
from idp.clients import ClientView
from idp.context import IdP, idp
from idp.endpoints.logout import end_session
from idp.erasure import erase_person, sessions_of, signed_in_person
from idp.errors import OAuthError, invalid_request
from idp.keys import ALGS

log = logging.getLogger(__name__)
bp = Blueprint("person_erase", __name__)

PATH = "/person/erase"


@bp.post(PATH)
def erase() -> ResponseReturnValue:
    ctx = idp()
    tries = attempts()  # the token endpoint's limits (idp.limits)
    try:
        with ctx.db.session() as s:
            client = authenticate(
                s,
                request.form,
                request.headers,
                [ctx.endpoint(PATH), ctx.issuer],
                allow_public=False,
                attempts=tries,
            )
            require_confidential(client)
            if not client.first_party:
                raise OAuthError("unauthorized_client", "only the platform's portal may ask", 403)
            claims = _id_token_claims(ctx, client, request.form.get("id_token_hint", ""))
            person_id = signed_in_person(s, ctx.subjects, client, claims["sub"], claims["sid"])
            if person_id is not None:
                for login in sessions_of(s, person_id):
                    end_session(ctx, s, login)
                erase_person(s, person_id)
    except OAuthError as err:
        tries.record(err)
        return err.json_response()
    log.info("person erased at the portal's request" if person_id else "no person to erase")
    resp = jsonify(erased=person_id is not None)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _id_token_claims(ctx: IdP, client: ClientView, hint: str) -> dict[str, Any]:
    """The claims of `hint` if it is an ID token this IdP signed for `client` in a sign-in
    (`sid`); anything else the IdP signs for the client (a back-channel logout token: `typ`
    logout+jwt, an `events` claim) is refused, since it would name the person forever."""
    try:
        token = jwt.decode(hint, ctx.keys.verification_keys(), algorithms=list(ALGS))
    except (JoseError, ValueError):
        raise invalid_request("id_token_hint is not an ID token of this IdP") from None
    claims = token.claims
    if token.header.get("typ", "JWT") != "JWT" or "events" in claims:
        raise invalid_request("id_token_hint is not an ID token")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if claims.get("iss") != ctx.issuer or client.client_id not in audiences:
        raise invalid_request("id_token_hint was not issued to this client")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise invalid_request("id_token_hint has no subject")
    if not isinstance(claims.get("sid"), str) or not claims["sid"]:
        raise invalid_request("id_token_hint names no sign-in")
    return claims
