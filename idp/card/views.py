"""Card-session endpoints (blueprint `bp`, mounted at /card):

GET  /card/sessions/<id or short code>   what the card reader signs: session_id, challenge,
                                          origin, expires_at
POST /card/sessions/<id>/response        {"certificate", "signature" (base64), optional
                                          "signature_certificate", "signature_signature"}
                                          → 200 {"status": "verified"} or 4xx/5xx
                                          {"error", "error_description"}
GET  /card/sessions/<id>/status          for the login page to poll: pending | verified | failed
GET  /card/sessions/<id>/qr.svg          the session URL as a QR code, while it is pending

None of these needs a cookie: the session id (in the QR code) or the short code is the key, and
what they reveal is only this session's own state.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from idp import limits
from idp.card.errors import FAILURES, CardError
from idp.card.models import CardSession
from idp.card.response import CardResponse, handle_response
from idp.card.services import CardServices
from idp.card.sessions import (
    _aware,
    _now,
    display_code,
    find_session,
    session_qr_svg,
)
from phr_core.catalogs import tables
from phr_core.webapp import database, settings

bp = Blueprint("card", __name__, url_prefix="/card", template_folder="templates")

MAX_BODY = 64 * 1024


def _lang() -> str:
    return request.accept_languages.best_match(["ja", "en"], default="ja") or "ja"


def _error(exc: CardError) -> Response:
    resp = jsonify(error=exc.code, error_description=exc.message(_lang()))
    resp.status_code = exc.status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _ok(**body: object) -> Response:
    resp = jsonify(**body)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def services() -> CardServices:
    """The app's card services (verifier with its OCSP cache, renewal links), made once."""
    found = current_app.extensions.get("phr_card_services")
    if found is None:
        found = CardServices.from_settings(settings())
        current_app.extensions["phr_card_services"] = found
    return found


@bp.get("/sessions/<session_id>/qr.svg")
def get_qr(session_id: str) -> ResponseReturnValue:
    """The QR code of a pending session (its public URL), for the login page's card panel."""
    with database().session() as s:
        session = s.get(CardSession, session_id) if len(session_id) <= 64 else None
        if session is None or session.status != "pending" or _aware(session.expires_at) <= _now():
            abort(404)
        svg = session_qr_svg(settings().issuer, session)
    resp = Response(svg, mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "private, max-age=300"
    return resp


@bp.get("/sessions/<ref>")
def get_session(ref: str) -> ResponseReturnValue:
    with database().session() as s:
        session = find_session(s, ref)
        if session is None:
            return _error(CardError("session_not_found"))
        if session.status != "pending":
            return _error(CardError("challenge_used"))
        if _aware(session.expires_at) <= _now():
            return _error(CardError("challenge_expired"))
        return _ok(
            session_id=session.id,
            challenge=session.challenge,
            origin=settings().issuer,
            expires_at=_aware(session.expires_at).isoformat(timespec="seconds"),
            purpose=session.purpose,
        )


@bp.post("/sessions/<session_id>/response")
def post_response(session_id: str) -> ResponseReturnValue:
    if (request.content_length or 0) > MAX_BODY:
        return _error(CardError("malformed_request"))
    try:
        response = CardResponse.from_json(request.get_json(silent=True))
    except CardError as exc:
        return _error(exc)
    try:
        proxies = limits.parse_proxies(settings().option("PHR_IDP_TRUSTED_PROXIES"))
        source = limits.source_address(request, proxies)
        handle_response(database(), services(), session_id, response, source)
    except CardError as exc:
        return _error(exc)
    return _ok(status="verified")


@bp.get("/sessions/<session_id>/status")
def get_status(session_id: str) -> ResponseReturnValue:
    lang = _lang()
    with database().session() as s:
        session = find_session(s, session_id)
        if session is None:
            return _error(CardError("session_not_found"))
        status, code = session.status, session.error
        if status in ("pending", "processing") and _aware(session.expires_at) <= _now():
            status, code = "failed", "challenge_expired"
    if status in ("verified", "consumed"):
        return _ok(status="verified", message=PANEL_TEXTS[lang]["verified"])
    if status == "failed":
        exc = CardError(code if code and code in _codes() else "internal_error")
        return _ok(status="failed", error=exc.code, message=exc.message(lang))
    message = PANEL_TEXTS[lang]["sign_with_app"]
    if code == "enrollment_required":
        message = CardError(code).message(lang)
    return _ok(status="pending", message=message)


def _codes() -> set[str]:
    return set(FAILURES)


# The card panel's words and status messages: gettext catalogs, msgctxt `idp.card`.
PANEL_TEXTS = tables("idp.card")

# Polls the session's status; on "verified" goes to data-card-done, on "failed" shows the
# message and stops. Served from here (not inline) so a strict CSP needs no exception.
POLL_JS = """(function () {
  var el = document.getElementById("card-signin");
  if (!el) { return; }
  var msg = el.querySelector(".card-message");
  function poll() {
    fetch(el.dataset.cardStatus, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (b) {
        if (b.message) { msg.textContent = b.message; }
        if (b.status === "verified") { window.location.assign(el.dataset.cardDone); return; }
        if (b.status === "failed") { el.classList.add("card-failed"); return; }
        setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
"""


@bp.get("/poll.js")
def poll_js() -> ResponseReturnValue:
    resp = Response(POLL_JS, mimetype="text/javascript")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


def panel_context(session: CardSession, done_url: str, lang: str = "ja") -> dict[str, object]:
    """What `{% include "card/panel.html" %}` needs (as `card`), for a session just made by
    create_card_session; `done_url` is the login page's own endpoint that calls take_verified."""
    return {
        # The QR code is its own image request: drawing it costs more than the rest of the
        # login page, and a person signing in on the phone itself (or another way) never needs it.
        "qr_url": url_for("card.get_qr", session_id=session.id),
        "code": display_code(session),
        "status_url": url_for("card.get_status", session_id=session.id),
        "done_url": done_url,
        "script_url": url_for("card.poll_js"),
        "texts": PANEL_TEXTS["en" if lang == "en" else "ja"],
    }
