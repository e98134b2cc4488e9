"""The person's passkey endpoints (blueprint `passkey`, mounted at /passkey):

GET  /passkey/enroll              page: type the staff-issued code, register a passkey
POST /passkey/enroll/options      {"code"} → WebAuthn creation options
POST /passkey/enroll/verify       {"credential"} → {"status": "registered", "message"}
POST /passkey/login/options?req=  → WebAuthn request options for a parked authorization
POST /passkey/login/verify?req=   {"credential"} → {"redirect": "/authorize/resume?req=…"}
GET  /passkey/passkey.js          the page script, static/passkey.js (no inline script)

The JSON endpoints need the header X-CSRF-Token (the token of this browser's IdP session).
Refusals are {"error", "message"} with the failure's status, each audited."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    Response,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from idp import limits, sessions
from idp.context import ACR_PASSKEY, acr_satisfies, idp
from idp.i18n import pick_language
from idp.models import AuthRequest
from idp.passkey import ceremonies, codes
from idp.passkey.audit import audit
from idp.passkey.errors import PasskeyError
from idp.passkey.texts import texts
from idp.tokens import aware, now_utc, sha256_hex
from phr_core import csrf

bp = Blueprint("passkey", __name__, url_prefix="/passkey", template_folder="templates")
STATIC = Path(__file__).with_name("static")

# Wrong enrollment codes per client address: 10 in 15 minutes (the code has 50 bits; this
# keeps guessing pointless and noisy).
CODE_ATTEMPTS = ("passkey-code", 10, limits.SIGN_IN[2])
# Sign-in answers that prove nothing (an unknown credential, a user handle or a signature that
# does not match) per client address, as the card path counts bad signatures (issue 14): a
# credential id is no secret once seen, so these must never pause the person it names.
SIGN_IN_SOURCE = ("passkey-source", limits.CARD_SOURCE[1], limits.CARD_SOURCE[2])
SOURCE_FAILURES = frozenset({"credential_unknown", "bad_signature"})
MAX_BODY = 64 * 1024


def _json(body: dict, status: int = 200) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _options(raw: str) -> Response:
    resp = Response(raw, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _refuse(exc: PasskeyError, lang: str) -> Response:
    return _json({"error": exc.code, "message": exc.message(lang)}, exc.status)


def _body() -> dict:
    if (request.content_length or 0) > MAX_BODY:
        raise PasskeyError("malformed_request")
    if not csrf.valid():  # the header X-CSRF-Token: this browser's IdP session's token
        raise PasskeyError("csrf")
    doc = request.get_json(silent=True)
    if not isinstance(doc, dict):
        raise PasskeyError("malformed_request")
    return doc


def _client_key() -> str:
    """Who guesses codes: the client's address, read through trusted reverse proxies (behind
    HAProxy every peer is the balancer, and one guesser would block everyone)."""
    return sha256_hex(limits.source_address(request, idp().trusted_proxies))


# --- enrollment -------------------------------------------------------------------------------


@bp.get("/enroll")
def enroll_page() -> ResponseReturnValue:
    lang = pick_language()
    resp = Response(
        render_template(
            "passkey/enroll.html",
            t=texts(lang),
            lang=lang,
            csrf=sessions.csrf_token(),
            available=ceremonies.rp_id(idp().issuer) is not None,
            unavailable=PasskeyError("passkeys_unavailable").message(lang),
            options_url=url_for("passkey.enroll_options", lang=lang),
            verify_url=url_for("passkey.enroll_verify", lang=lang),
            script_url=url_for("passkey.script"),
        )
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/enroll/options")
def enroll_options() -> ResponseReturnValue:
    ctx = idp()
    lang = pick_language()
    data_key = ctx.settings.secret("PHR_IDP_DATA_KEY")
    failed_code = False
    with ctx.db.session() as s:
        try:
            doc = _body()
            if limits.blocked_for(s, CODE_ATTEMPTS, _client_key()):
                raise PasskeyError("too_many_attempts")
            code = codes.check(s, data_key, str(doc.get("code", ""))[:40])
            options = ceremonies.registration_options(s, ctx.settings, code)
            audit(s, "code_entered", "success", person_id=code.person_id, ref=code.id)
        except PasskeyError as exc:
            audit(s, "code_entered", "failure", code=exc.code)
            failed_code = exc.code == "code_wrong"
            error = exc
        else:
            return _options(options)
    if failed_code:
        limits.record_failure(ctx.db, CODE_ATTEMPTS, _client_key())
    return _refuse(error, lang)


@bp.post("/enroll/verify")
def enroll_verify() -> ResponseReturnValue:
    ctx = idp()
    lang = pick_language()
    with ctx.db.session() as s:
        try:
            doc = _body()
            passkey = ceremonies.verify_registration(s, ctx.settings, doc.get("credential"))
            audit(
                s, "passkey_registered", "success", person_id=passkey.person_id, ref=str(passkey.id)
            )
        except PasskeyError as exc:
            audit(s, "passkey_registered", "failure", code=exc.code)
            return _refuse(exc, lang)
    return _json({"status": "registered", "message": texts(lang)["registered"]})


# --- sign-in ----------------------------------------------------------------------------------


def _parked(s: Session) -> AuthRequest:
    row = s.get(AuthRequest, request.args.get("req", ""))
    if row is None or row.pushed or aware(row.expires_at) < now_utc():
        raise PasskeyError("request_expired")
    if not acr_satisfies(ACR_PASSKEY, row.params.get("_required_acr") or None):
        raise PasskeyError("card_required")
    return row


def _request_lang(s: Session) -> str:
    row = s.get(AuthRequest, request.args.get("req", ""))
    return pick_language(row.params.get("ui_locales") if row else None)


@bp.post("/login/options")
def login_options() -> ResponseReturnValue:
    ctx = idp()
    with ctx.db.session() as s:
        lang = _request_lang(s)
        try:
            _body()
            row = _parked(s)
            options = ceremonies.authentication_options(s, ctx.settings, row.id)
        except PasskeyError as exc:
            audit(s, "passkey_sign_in", "failure", code=exc.code)
            return _refuse(exc, lang)
    return _options(options)


@bp.post("/login/verify")
def login_verify() -> ResponseReturnValue:
    ctx = idp()
    with ctx.db.session() as s:
        lang = _request_lang(s)
        error: PasskeyError | None
        try:
            doc = _body()
            row = _parked(s)
            if limits.blocked_for(s, SIGN_IN_SOURCE, _client_key()):
                raise PasskeyError("too_many_attempts")
            result = ceremonies.verify_authentication(
                s, ctx.settings, doc.get("credential"), row.id
            )
        except PasskeyError as exc:
            audit(s, "passkey_sign_in", "failure", code=exc.code, ref=exc.ref)
            error = exc
        else:
            error = None
        if error is None:
            return _signed_in(s, row, result)
    # Counted in transactions of their own, after the audit is committed.
    if error.code in SOURCE_FAILURES:
        limits.record_failure(ctx.db, SIGN_IN_SOURCE, _client_key())
    if error.person_id is not None:
        # The person's own key signed and something else failed (the counter went back).
        limits.record_failure(ctx.db, limits.SIGN_IN, error.person_id)
    return _refuse(error, lang)


def _signed_in(s: Session, row: AuthRequest, result: ceremonies.PasskeySignIn) -> Response:
    """Sign the browser in and send it back to the parked authorization request."""
    sessions.start(s, result.person_id, result.acr, result.amr)
    row.params = {**row.params, "_login_done": "1"}
    audit(s, "passkey_sign_in", "success", person_id=result.person_id, ref=str(result.passkey_id))
    return _json({"status": "signed_in", "redirect": f"/authorize/resume?req={row.id}"})


def panel_context(request_id: str, required_acr: str | None, lang: str) -> dict | None:
    """What `{% include "passkey/panel.html" %}` needs on the login page (as `passkey`), or None
    when a passkey cannot serve this request (the client or a scope needs the card, or the IdP
    is reached by IP address, where browsers offer no passkeys)."""
    if ceremonies.rp_id(idp().issuer) is None or not acr_satisfies(ACR_PASSKEY, required_acr):
        return None
    t = texts(lang)
    return {
        "options_url": url_for("passkey.login_options", req=request_id),
        "verify_url": url_for("passkey.login_verify", req=request_id),
        "script_url": url_for("passkey.script"),
        "csrf": sessions.csrf_token(),
        "texts": {k: t[k] for k in ("passkey_title", "passkey_help", "passkey_button")},
        "messages": {k: t[k] for k in ("working", "cancelled", "unsupported", "noscript")},
    }


@bp.get("/passkey.js")
def script() -> ResponseReturnValue:
    """static/passkey.js, at the URL the pages have always used (a route of its own rather than
    the blueprint's /static/ one, so the URL, type and caching stay as they were)."""
    resp = send_from_directory(STATIC, "passkey.js", mimetype="text/javascript")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp
