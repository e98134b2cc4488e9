"""Portal pages: server-rendered HTML that works on a phone without JavaScript."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response, abort, make_response, redirect, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from consent import records
from consent.i18n import COOKIE, current_language, messages
from consent.linkage import GUARDIANSHIP_END_AGE
from consent.models import Municipality, utcnow
from consent.records import CATEGORY_NAMES, RECIPIENT
from phr_core import budgets
from phr_core.webapp import database
from portal.auth import check_csrf, client_id, csrf_token, current_subject
from portal.words import describe_all

bp = Blueprint("portal", __name__, template_folder="templates")

JST = timezone(timedelta(hours=9), "JST")  # dates are shown as the person's calendar has them


def _page(
    template: str,
    status: int = 200,
    words: Callable[[str], dict[str, str]] = messages,
    **context: object,
) -> Response:
    """A portal page in the person's language (`words(lang)` its texts); personal pages are
    never cached."""
    lang = current_language()
    subject = current_subject()
    resp = make_response(
        render_template(
            template,
            lang=lang,
            t=words(lang),
            signed_in=subject is not None,
            csrf=csrf_token() if subject is not None else "",
            **context,
        ),
        status,
    )
    resp.set_cookie(COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    resp.headers["Content-Language"] = lang
    if subject is not None:
        resp.headers["Cache-Control"] = "no-store"  # personal pages stay out of caches
    return resp


@bp.get("/")
def index() -> ResponseReturnValue:
    with database().session() as s:
        cities = s.scalars(select(Municipality).order_by(Municipality.code)).all()
    return _page("index.html", municipalities=cities)


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    """The privacy notice every consent and receipt points to (policyUrl); no sign-in needed."""
    return _page(
        "privacy.html", categories=list(CATEGORY_NAMES.items()), end_age=GUARDIANSHIP_END_AGE
    )


def _day(value: datetime | None) -> str:
    value = records.as_utc(value)
    return value.astimezone(JST).strftime("%Y-%m-%d") if value else ""


def _app_grants(subject: str, lang: str) -> list[dict[str, object]]:
    """The person's active app grants (not the portal's own sign-in), oldest first."""
    now = utcnow()
    own = client_id()
    with database().session() as s:
        views = records.current(s, kind=RECIPIENT, subject=subject, status=records.ACTIVE)
        return [
            {
                "id": v.id,
                "client_name": v.version.actor_name,
                "scopes": describe_all(list(v.version.scopes), lang),
                "categories": [
                    CATEGORY_NAMES[c][0 if lang == "ja" else 1]
                    for c in v.version.categories
                    if c in CATEGORY_NAMES
                ],
                "purpose": v.version.purpose,
                "granted": _day(v.record.created_at),
                "expires": _day(v.version.period_end),
            }
            for v in views
            if v.record.actor != own and v.state(now) == "active"
        ]


@bp.get("/me/apps")
def my_apps() -> ResponseReturnValue:
    """ "Who can see my data": every app with an active grant, each with a revoke button."""
    subject = current_subject()
    if subject is None:
        return redirect("/auth/login")
    lang = current_language()
    return _page("apps.html", grants=_app_grants(subject, lang))


@bp.post("/me/apps/<grant_id>/revoke")
def revoke_app(grant_id: str) -> ResponseReturnValue:
    """Withdraw one app grant, as the consent API's revoke does; the IdP refuses the app's next
    refresh and the PHR server its next read."""
    subject = current_subject()
    if subject is None:
        abort(403)
    check_csrf()
    with database().session() as s:
        view = records.get(s, grant_id, for_update=True)
        if view is None or view.record.kind != RECIPIENT or view.record.subject != subject:
            abort(404)
        records.withdraw(s, view, recorded_by=client_id(), reason="revoked in the portal")
    return redirect("/me/apps?revoked=1", code=303)


def problem(key: str, status: int = 400) -> Response:
    """A readable error page with one of the portal's messages; a 503 (a service it needs
    cannot answer now) says when to try again."""
    resp = _page("error.html", status=status, code=status, message_key=key)
    if status == 503:
        resp.headers["Retry-After"] = str(budgets.RETRY_AFTER_S)
    return resp


def error_page(exc: HTTPException) -> Response:
    """Portal errors are a readable page in the person's language, never a stack trace."""
    code = exc.code or 500
    key = {
        404: "not_found",
        400: "bad_request",
        403: "forbidden",
        405: "bad_request",
        413: "too_large",
        414: "url_too_long",
    }.get(code, "server_error")
    return problem(key, code)
