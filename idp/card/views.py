"""Card-session endpoints (blueprint `bp`, mounted at /card):

GET  /card/sessions/<id or short code>   what the card reader signs: session_id, challenge,
                                          origin, expires_at
POST /card/sessions/<id>/response        {"certificate", "signature" (base64), optional
                                          "signature_certificate", "signature_signature"}
                                          → 200 {"status": "verified"} or 4xx/5xx
                                          {"error", "error_description"}
GET  /card/sessions/<id>/status          for the login page to poll: pending | verified | failed
GET  /card/sessions/<id>/qr.svg          the session URL as a QR code, while it is pending
POST /card/renew                          the sign-in page's script: a fresh code in place of an
                                          expired one, for the browser that holds the old one
GET|POST /card/phone/<id>?return=<path>   the phone app link's landing page (idp.card.phone):
                                          with the virtual card in development, the stand-in
                                          for the card-reading app

The session endpoints need no cookie: the session id (in the QR code) or the short code is the
key, and what they reveal is only this session's own state. Renewing needs the browser's own
session (BROWSER_KEY) and the id it holds.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as flask_session
from flask.typing import ResponseReturnValue

from idp import limits
from idp.card.errors import FAILURES, CardError
from idp.card.models import CardSession
from idp.card.phone import StandInCard, safe_return
from idp.card.response import CardResponse, handle_response
from idp.card.services import CardServices
from idp.card.sessions import (
    _aware,
    _now,
    create_card_session,
    display_code,
    find_session,
    session_qr_svg,
)
from idp.card.verifier_config import verifier_choice
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
        handle_response(database(), services(), session_id, response, _source())
    except CardError as exc:
        return _error(exc)
    return _ok(status="verified")


def _source() -> str:
    proxies = limits.parse_proxies(settings().option("PHR_IDP_TRUSTED_PROXIES"))
    return limits.source_address(request, proxies)


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

# The browser's own session key for its card session: the login page sets it, `take_verified`
# reads it, and renewing replaces it (idp.endpoints.interaction uses the same name).
BROWSER_KEY = "card_session"

# The panel's phone and renewal words: msgctxt `idp.card.phone`.
PHONE_TEXTS = tables("idp.card.phone")

# Lays the panel out for the screen (on a phone the QR code, meant for a second device, is
# folded away under the app link), polls the session's status (on "verified" goes to
# data-card-done; on "failed" shows the message and offers a new code), and renews the code in
# place: a fresh session, QR code, short code and app link, without reloading the page. Served
# from here (not inline) so a strict CSP needs no exception.
POLL_JS = """(function () {
  var el = document.getElementById("card-signin");
  if (!el) { return; }
  var msg = el.querySelector(".card-message");
  var renew = el.querySelector(".card-renew");
  var qrBox = el.querySelector(".card-qr-box");
  var phone = el.querySelector(".card-phone");
  var narrow = window.matchMedia("(max-width: 40rem)");
  function layout() { if (qrBox) { qrBox.open = !narrow.matches; } }
  layout();
  if (narrow.addEventListener) { narrow.addEventListener("change", layout); }
  var generation = 0, timer = null;
  function later(ms) {
    var g = generation;
    clearTimeout(timer);
    timer = setTimeout(function () { poll(g); }, ms);
  }
  function poll(g) {
    fetch(el.dataset.cardStatus, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (b) {
        if (g !== generation) { return; }
        if (b.message) { msg.textContent = b.message; }
        if (b.status === "verified") { window.location.assign(el.dataset.cardDone); return; }
        if (b.status === "failed") {
          el.classList.add("card-failed");
          if (renew) { renew.hidden = false; renew.focus(); }
          return;
        }
        later(1500);
      })
      .catch(function () { if (g === generation) { later(3000); } });
  }
  if (renew) {
    renew.addEventListener("click", function () {
      renew.disabled = true;
      fetch(el.dataset.cardRenew, {
        method: "POST", cache: "no-store", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify({session: el.dataset.cardSession, "return": el.dataset.cardDone})
      })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (b) {
          generation += 1;
          el.dataset.cardSession = b.session;
          el.dataset.cardStatus = b.status_url;
          el.querySelector(".card-qr img").src = b.qr_url;
          el.querySelector(".card-code code").textContent = b.code;
          if (phone && b.phone_url) { phone.href = b.phone_url; }
          msg.textContent = b.message;
          el.classList.remove("card-failed");
          renew.hidden = true;
          renew.disabled = false;
          later(1000);
        })
        .catch(function () { window.location.reload(); });
    });
  }
  later(1000);
})();
"""


@bp.get("/poll.js")
def poll_js() -> ResponseReturnValue:
    resp = Response(POLL_JS, mimetype="text/javascript")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


def phone_link_offered() -> bool:
    """Whether something answers the phone app link: only the development stand-in, with the
    virtual card (no card-reading app for our sessions exists for the real card; with the
    authentication app, its own sign-in button is the phone route)."""
    return not settings().production and verifier_choice(settings()).kind == "virtual"


def _urls(session: CardSession, done_url: str) -> dict[str, str | None]:
    phone = None
    if phone_link_offered():
        back = urlencode({"return": done_url}, safe="/")
        phone = url_for("card.phone_page", session_id=session.id) + "?" + back
    return {
        "session": session.id,
        "qr_url": url_for("card.get_qr", session_id=session.id),
        "code": display_code(session),
        "status_url": url_for("card.get_status", session_id=session.id),
        "phone_url": phone,
    }


def _phone_texts(lang: str) -> dict[str, str]:
    return PHONE_TEXTS["en" if lang == "en" else "ja"]


def panel_context(session: CardSession, done_url: str, lang: str = "ja") -> dict[str, object]:
    """What `{% include "card/panel.html" %}` needs (as `card`), for a session just made by
    create_card_session; `done_url` is the login page's own endpoint that calls take_verified.
    Called while serving the sign-in page, whose own address renews the code without script."""
    return {
        # The QR code is its own image request: drawing it costs more than the rest of the
        # login page, and a person signing in on the phone itself (or another way) never needs it.
        **_urls(session, done_url),
        "done_url": done_url,
        "renew_url": url_for("card.renew"),
        "reload_url": request.full_path.rstrip("?"),
        "script_url": url_for("card.poll_js"),
        "texts": PANEL_TEXTS["en" if lang == "en" else "ja"],
        "phone_texts": _phone_texts(lang),
    }


@bp.post("/renew")
def renew() -> ResponseReturnValue:
    """A new card session in place of the browser's current one (expired, failed or still
    pending): only the browser holding that session's id may replace it, so another site
    cannot reset someone's sign-in. The done path stays the page's own."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    old, done = body.get("session"), safe_return(body.get("return"))
    if not isinstance(old, str) or not old or flask_session.get(BROWSER_KEY) != old or not done:
        return _error(CardError("session_not_found"))
    with database().session() as s:
        previous = s.get(CardSession, old) if len(old) <= 64 else None
        fresh = create_card_session(s, previous.purpose if previous else "login")
        urls = _urls(fresh, done)
    flask_session[BROWSER_KEY] = fresh.id
    return _ok(**urls, message=_phone_texts(_lang())["renewed"])


@bp.route("/phone/<session_id>", methods=["GET", "POST"])
def phone_page(session_id: str) -> ResponseReturnValue:
    """The app link's landing page when no app claimed it: in development with the virtual
    card, the stand-in for the card-reading app; otherwise there is nothing to open it."""
    if not phone_link_offered():
        abort(404)
    done = safe_return(request.values.get("return"))
    if done is None:
        abort(400)
    lang = _lang()
    texts = _phone_texts(lang)
    problem = ""
    if request.method == "POST":
        given = StandInCard(
            request.form.get("card", "").strip(),
            request.form.get("pin", ""),
            request.form.get("sign_pin", ""),
        )
        try:
            if _standin_sign(session_id, given):
                return redirect(done)
            problem = texts["standin_unreadable"]
        except CardError as exc:
            problem = exc.message(lang)
    resp = Response(
        render_template("card/phone_standin.html", t=texts, lang=lang, done=done, problem=problem),
        status=400 if problem else 200,
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _standin_sign(session_id: str, given: StandInCard) -> bool:
    """Sign the session with the given virtual card as the app would; False when the file is
    no virtual card. A first sign-in enrolls: with the signature PIN, the 署名用 pair is sent
    after the IdP asked for it (CardError('enrollment_required') without it)."""
    card = given.load()
    if card is None:
        return False
    with database().session() as s:
        session = find_session(s, session_id)
        if session is None:
            raise CardError("session_not_found")
        sid, challenge = session.id, session.challenge
    origin = settings().issuer
    try:
        response = given.response(card, origin, sid, challenge, with_signature=False)
        handle_response(database(), services(), sid, response, _source())
    except CardError as exc:
        if exc.code != "enrollment_required" or not given.sign_pin:
            raise
        response = given.response(card, origin, sid, challenge, with_signature=True)
        handle_response(database(), services(), sid, response, _source())
    return True
