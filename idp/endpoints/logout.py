"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and back-channel logout
(OpenID Connect Back-Channel Logout 1.0): ending the sign-in tells every client that got
tokens in that session, with a signed logout token carrying the client's own pairwise `sub`."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp import sessions
from idp.clients import get_client
from idp.context import IdP, idp
from idp.endpoints.authorize import error_page
from idp.i18n import MESSAGES, pick_language
from idp.keys import ALGS
from idp.models import AuthorizationCode, LoginSession, RefreshToken
from idp.sessions import SignIn
from idp.tokens import new_handle, now_utc, sign
from phr_core import outbound

log = logging.getLogger(__name__)
bp = Blueprint("logout", __name__, template_folder="../templates")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL_S = 120
DELIVERY_TIMEOUT_S = 3


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    ctx = idp()
    params = request.values
    lang = pick_language(params.get("ui_locales"))
    with ctx.db.session() as s:
        hint_client, hint_sub = _read_hint(ctx, params.get("id_token_hint"))
        client_id = params.get("client_id") or hint_client
        if params.get("client_id") and hint_client and params["client_id"] != hint_client:
            return error_page("client_id does not match id_token_hint", 400, lang)
        target = params.get("post_logout_redirect_uri")
        if target:
            client = get_client(s, client_id or "")
            if client is None or target not in client.meta.get("post_logout_redirect_uris", []):
                return error_page("post_logout_redirect_uri is not registered", 400, lang)
        login = sessions.current(s)
        same_person = (
            login is not None
            and hint_sub is not None
            and hint_client is not None
            and (c := get_client(s, hint_client)) is not None
            and ctx.subjects.subject(s, c.sector, login.person_id) == hint_sub
        )
        if login is not None and not same_person:
            # Without proof the RP speaks for this browser's person, ask the person.
            return render_template(
                "idp_logout.html",
                t=MESSAGES[lang],
                lang=lang,
                csrf=sessions.csrf_token(),
                target=target or "",
                state=params.get("state", ""),
                client_id=client_id or "",
            )
        if login is not None:
            sessions.end(s)  # this browser's cookie
            end_session(ctx, s, login)
    return _done(target, params.get("state"), lang)


@bp.post("/logout/confirm")
def confirm() -> ResponseReturnValue:
    ctx = idp()
    sessions.check_csrf()
    lang = pick_language(None)
    target = request.form.get("target") or None
    with ctx.db.session() as s:
        if target:
            client = get_client(s, request.form.get("client_id", ""))
            if client is None or target not in client.meta.get("post_logout_redirect_uris", []):
                return error_page("post_logout_redirect_uri is not registered", 400, lang)
        login = sessions.current(s)
        if login is not None and request.form.get("decision") == "logout":
            sessions.end(s)  # this browser's cookie
            end_session(ctx, s, login)
    return _done(target, request.form.get("state"), lang)


def _done(target: str | None, state: str | None, lang: str) -> ResponseReturnValue:
    if target:
        query = urlencode({"state": state}) if state else ""
        return redirect(target + (("&" if "?" in target else "?") + query if query else ""))
    return render_template("idp_logged_out.html", t=MESSAGES[lang], lang=lang)


def _read_hint(ctx: IdP, hint: str | None) -> tuple[str | None, str | None]:
    if not hint:
        return None, None
    try:
        claims = jwt.decode(hint, ctx.keys.verification_keys(), algorithms=list(ALGS)).claims
    except (JoseError, ValueError):
        return None, None
    if claims.get("iss") != ctx.issuer:
        return None, None
    aud = claims.get("aud")
    return (aud if isinstance(aud, str) else None), claims.get("sub")


def end_session(ctx: IdP, s: Session, login: SignIn) -> None:
    """End the sign-in `login` (whichever browser holds it; the caller drops its own cookie if
    it is the current one): its refresh tokens without offline_access, and a back-channel
    logout token to every client that received tokens in it."""
    s.execute(
        update(LoginSession)
        .where(LoginSession.id_hash == login.id_hash, LoginSession.ended_at.is_(None))
        .values(ended_at=now_utc())
    )
    s.execute(
        update(RefreshToken)
        .where(
            RefreshToken.sid == login.sid,
            RefreshToken.revoked_at.is_(None),
            ~RefreshToken.scope.contains("offline_access"),
        )
        .values(revoked_at=now_utc())
    )
    client_ids = s.scalars(
        select(AuthorizationCode.client_id).where(AuthorizationCode.sid == login.sid).distinct()
    ).all()
    for client_id in client_ids:
        client = get_client(s, client_id)
        uri = client.meta.get("backchannel_logout_uri") if client else None
        if client is None or not uri:
            continue
        now = int(now_utc().timestamp())
        token = sign(
            ctx,
            {
                "iss": ctx.issuer,
                "aud": client.client_id,
                "iat": now,
                "exp": now + LOGOUT_TOKEN_TTL_S,
                "jti": new_handle(16),
                "sub": ctx.subjects.subject(s, client.sector, login.person_id),
                "sid": login.sid,
                "events": {BACKCHANNEL_EVENT: {}},
            },
            typ="logout+jwt",
            alg=client.id_token_alg,
        )
        _deliver(ctx, client.client_id, uri, token)


def _deliver(ctx: IdP, client_id: str, uri: str, token: str) -> None:
    """POST the logout token to the URI the client registered, within phr_core.outbound's
    bounds: a registered URI must not make the IdP reach its own network."""
    fetch = outbound.for_settings(ctx.settings, deadline=DELIVERY_TIMEOUT_S)
    try:
        resp = fetch.post_form(uri, {"logout_token": token})
        if resp.status >= 300:
            log.warning("back-channel logout to client %s answered %s", client_id, resp.status)
    except OSError as exc:
        log.warning("back-channel logout to client %s failed (%s)", client_id, exc)
