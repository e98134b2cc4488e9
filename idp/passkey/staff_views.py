"""The counter staff's pages (blueprint `passkey_staff`, mounted at /staff):

GET  /staff/login    sign-in form           POST /staff/login    check, set the staff cookie
GET  /staff/         the counter form       POST /staff/codes    find the person, issue a code
POST /staff/logout

Staff sessions use their own cookie (path /staff), never the citizens' session cookie; every
form carries a CSRF token (before sign-in a double-submit cookie, after it the token stored
with the staff session). Every action is audited (idp/passkey/audit.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from flask import Blueprint, Response, make_response, redirect, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from idp.card.sessions import qr_svg
from idp.card.views import services as card_services
from idp.context import idp
from idp.i18n import pick_language
from idp.passkey import codes, staff
from idp.passkey.audit import audit
from idp.passkey.errors import PasskeyError
from idp.passkey.texts import texts
from phr_core import csrf

bp = Blueprint("passkey_staff", __name__, url_prefix="/staff", template_folder="templates")

LOGIN_CSRF_COOKIE = "phr_idp_staff_csrf"
JST_OFFSET = timedelta(hours=9)


def _lang() -> str:
    return pick_language()


_R = TypeVar("_R", bound=BaseResponse)


def _no_store(resp: _R) -> _R:
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _secure() -> bool:
    return idp().issuer.startswith("https://")


def _login_page(error: PasskeyError | None = None) -> Response:
    lang = _lang()
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or csrf.new_token()
    resp = make_response(
        render_template(
            "passkey/staff_login.html",
            t=texts(lang),
            lang=lang,
            csrf=token,
            error=error.message(lang) if error else None,
        ),
        error.status if error else 200,
    )
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=staff.COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=_secure(),
    )
    return _no_store(resp)


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    return _login_page()


@bp.post("/login")
def login() -> ResponseReturnValue:
    if not csrf.matches(csrf.sent(), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(PasskeyError("csrf"))
    with idp().db.session() as s:
        error: PasskeyError | None
        try:
            signed_in = staff.sign_in(
                s, request.form.get("login", "").strip(), request.form.get("password", "")
            )
        except PasskeyError as exc:
            error = exc
        else:
            error = None
    if error is not None:
        return _login_page(error)
    resp = redirect(f"/staff/?lang={_lang()}")
    resp.set_cookie(
        staff.COOKIE,
        signed_in.handle,
        path=staff.COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=_secure(),
        max_age=int(staff.STAFF_SESSION_TTL.total_seconds()),
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path=staff.COOKIE_PATH)
    return _no_store(resp)


def _counter_page(
    who: staff.CurrentStaff,
    *,
    error: PasskeyError | None = None,
    issued: codes.IssuedCode | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    lang = _lang()
    enroll_url = idp().endpoint("/passkey/enroll")
    qr = qr_svg(f"{enroll_url}#code={codes.display(issued.code)}") if issued else None
    resp = make_response(
        render_template(
            "passkey/staff_counter.html",
            t=texts(lang),
            lang=lang,
            who=who,
            csrf=who.csrf,
            error=error.message(lang) if error else None,
            issued=issued,
            code=codes.display(issued.code) if issued else None,
            expires=(issued.expires_at + JST_OFFSET).strftime("%H:%M") + " JST" if issued else "",
            qr_svg=qr,
            enroll_url=enroll_url,
            form=form or {},
        ),
        error.status if error else 200,
    )
    return _no_store(resp)


def _staff(s: Session) -> staff.CurrentStaff | None:
    return staff.current(s, request.cookies.get(staff.COOKIE))


@bp.get("/")
def counter() -> ResponseReturnValue:
    with idp().db.session() as s:
        who = _staff(s)
    if who is None:
        return redirect(f"/staff/login?lang={_lang()}")
    return _counter_page(who)


@bp.post("/codes")
def issue_code() -> ResponseReturnValue:
    ctx = idp()
    data_key = ctx.settings.secret("PHR_IDP_DATA_KEY")
    form = {k: request.form.get(k, "").strip() for k in ("name", "birthdate", "address")}
    with ctx.db.session() as s:
        who = _staff(s)
        if who is None:
            audit(s, "code_issue", "failure", code="staff_signed_out")
            error: PasskeyError | None = PasskeyError("staff_signed_out")
        elif not csrf.matches(csrf.sent(), who.csrf):
            audit(s, "code_issue", "failure", code="csrf", staff_id=who.staff_id)
            error = PasskeyError("csrf")
        else:
            try:
                if not form["name"] or not codes.BIRTHDATE.match(form["birthdate"]):
                    raise PasskeyError("bad_input")
                if len(form["name"]) > 200 or len(form["address"]) > 400:
                    raise PasskeyError("bad_input")
                if request.form.get("confirmed") != "yes":
                    raise PasskeyError("not_confirmed")
                person_id = codes.find_person(
                    s,
                    data_key,
                    card_services().open_attributes,
                    form["name"],
                    form["birthdate"],
                    form["address"],
                )
                issued = codes.issue(s, data_key, who.staff_id, person_id)
            except PasskeyError as exc:
                audit(s, "code_issue", "failure", code=exc.code, staff_id=who.staff_id)
                error = exc
            else:
                return _counter_page(who, issued=issued)
    if who is None:
        return _no_store(make_response(redirect(f"/staff/login?lang={_lang()}")))
    return _counter_page(who, error=error, form=form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    with idp().db.session() as s:
        who = _staff(s)
        if who is not None and csrf.matches(csrf.sent(), who.csrf):
            staff.sign_out(s, who)
    resp = redirect(f"/staff/login?lang={_lang()}")
    resp.delete_cookie(staff.COOKIE, path=staff.COOKIE_PATH)
    return _no_store(resp)
