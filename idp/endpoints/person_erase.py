"""`POST /person/erase`: the platform's portal asks the IdP to forget a person who deleted their
account (idp.erasure says what goes and what stays; docs/retention.md).

Only a first-party client may ask (the portal, `phr_first_party`), authenticated as at the
token endpoint, and only for a person it holds an ID token of: `id_token_hint` is an ID token
this IdP signed for that client (expired is fine: the portal keeps it for logout, as
RP-Initiated Logout accepts). The person is found by the token's `sid` and `sub`. The answer is
200 `{"erased": true|false}`: false when no such person exists (any more), so the portal's
retry after a lost answer succeeds. The person's sign-ins are ended first, with back-channel
logout to every app that got tokens in them.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import JoseError

from idp.client_auth import attempts, authenticate, require_confidential
from idp.context import idp
from idp.endpoints.logout import end_session
from idp.erasure import erase_person, person_of, sessions_of
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
            try:
                claims = jwt.decode(
                    request.form.get("id_token_hint", ""),
                    ctx.keys.verification_keys(),
                    algorithms=list(ALGS),
                ).claims
            except (JoseError, ValueError):
                raise invalid_request("id_token_hint is not an ID token of this IdP") from None
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            sub = claims.get("sub")
            if claims.get("iss") != ctx.issuer or client.client_id not in audiences:
                raise invalid_request("id_token_hint was not issued to this client")
            if not isinstance(sub, str) or not sub:
                raise invalid_request("id_token_hint has no subject")
            sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
            person_id = person_of(s, ctx.subjects, client.sector, sub, sid)
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
