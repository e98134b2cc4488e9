"""The browser side of the broker (blueprint `authapp`):

GET /login/app?req=<parked request>   start: a single-use session, then to the app's authorize page
GET /login/app/callback               the app's answer (code and state, or error): finish, map to
                                      our person, sign the browser in, resume the authorization

Only the browser that started a sign-in may finish it: its Flask session holds the state and
the parked request. Every failure is an ja/en page (idp_error.html) and an audit row."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Blueprint, current_app, redirect, request
from flask import session as flask_session
from flask.typing import ResponseReturnValue
from joserfc.jwk import RSAKey

from idp import sessions
from idp.card.authapp.broker import Broker
from idp.card.authapp.client import AuthAppClient
from idp.card.authapp.errors import PAGE_TEXTS, AppError
from idp.card.sessions import take_verified
from idp.card.verifier_config import AppChoice, app_choice, verifier_choice
from idp.endpoints.authorize import error_page, expired_page
from idp.i18n import pick_language
from idp.models import AuthRequest
from idp.tokens import aware, now_utc
from phr_core import outbound
from phr_core.config import ConfigError, Settings
from phr_core.webapp import database, settings

bp = Blueprint("authapp", __name__)

CALLBACK_PATH = "/login/app/callback"


def load_client_key(choice: AppChoice, production: bool) -> RSAKey:
    """The IdP's private JWK for private_key_jwt; made (mode 0600) on first use in development."""
    path: Path = choice.key_file
    if not path.is_file():
        if production:
            raise ConfigError(f"PHR_CARD_APP_KEY_FILE={str(path)!r} is missing")
        key = RSAKey.generate_key(2048, {"use": "sig", "alg": "RS256"}, private=True, auto_kid=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(key.as_dict(private=True), f)
    return RSAKey.import_key(json.loads(path.read_text()))


def make_broker(s: Settings) -> Broker:
    choice = app_choice(s)
    # The upstream issuer is an origin the operator configured (https in production, see
    # app_choice), so it gets the configured origins' treatment: no per-address cap.
    policy = outbound.AddressPolicy(
        s.production, outbound.configured_origins([*s.urls.values(), choice.issuer])
    )
    client = AuthAppClient(
        outbound.Outbound(policy),
        choice.issuer,
        choice.client_id,
        load_client_key(choice, s.production),
        s.issuer + CALLBACK_PATH,
        choice.acr_values,
    )
    return Broker(s, database(), client)


def broker() -> Broker:
    """The app's broker (its client caches discovery and keys), made once."""
    found = current_app.extensions.get("phr_authapp_broker")
    if found is None:
        found = make_broker(settings())
        current_app.extensions["phr_authapp_broker"] = found
    return found


def enabled() -> bool:
    return verifier_choice(settings()).kind == "app"


def login_link(req: str, lang: str) -> dict[str, object] | None:
    """What the login page shows for the app route (`authapp`), or None when it is not chosen."""
    if not enabled():
        return None
    return {"url": f"/login/app?req={req}", "texts": PAGE_TEXTS["en" if lang == "en" else "ja"]}


def _lang() -> str:
    return pick_language()


def _page(exc: AppError) -> ResponseReturnValue:
    return error_page(exc.message(_lang()), exc.status, _lang())


def _parked(req: str) -> bool:
    with database().session() as s:
        row = s.get(AuthRequest, req)
        return row is not None and not row.pushed and aware(row.expires_at) >= now_utc()


def _start(req: str, enrol: bool) -> ResponseReturnValue:
    try:
        state, url = broker().begin(enrol)
    except AppError as exc:
        return _page(exc)
    flask_session["authapp"] = {"state": state, "req": req}
    return redirect(url)


@bp.get("/login/app")
def login_app() -> ResponseReturnValue:
    if not enabled():
        return error_page("not found", 404)
    req = request.args.get("req", "")
    if not _parked(req):
        return expired_page()
    return _start(req, enrol=False)


@bp.get(CALLBACK_PATH)
def callback() -> ResponseReturnValue:
    if not enabled():
        return error_page("not found", 404)
    mine = flask_session.pop("authapp", None) or {}
    state = request.args.get("state", "")
    b = broker()
    if not state or not isinstance(mine, dict) or mine.get("state") != state:
        # Not this browser's sign-in: the session (if it is ours at all) is left untouched.
        exc = AppError("state_mismatch")
        b.fail(None, exc)
        return _page(exc)
    if request.args.get("error"):
        denied = request.args["error"] == "access_denied"
        exc = AppError("access_denied" if denied else "upstream_error")
        b.fail(state, exc)
        return _page(exc)
    try:
        outcome = b.finish(state, request.args.get("code", ""))
    except AppError as exc:
        return _page(exc)
    req = str(mine.get("req", ""))
    if outcome.enrol:
        return _start(req, enrol=True)
    if outcome.person_id is None or not _parked(req):
        return expired_page()
    with database().session() as s:
        row = s.get(AuthRequest, req)
        result = take_verified(s, state)
        if row is None or result is None:
            return expired_page()
        sessions.start(s, result.person_id, result.acr, list(result.amr))
        row.params = {**row.params, "_login_done": "1"}
    return redirect(f"/authorize/resume?req={req}")
