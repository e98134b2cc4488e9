"""Portal pages: server-rendered HTML that works on a phone without JavaScript."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from consent.i18n import COOKIE, current_language, messages
from consent.linkage import GUARDIANSHIP_END_AGE
from consent.models import Municipality
from consent.records import CATEGORY_NAMES
from phr_core.webapp import database

bp = Blueprint("portal", __name__, template_folder="templates")


def _page(template: str, status: int = 200, **context: object) -> Response:
    lang = current_language()
    resp = make_response(render_template(template, lang=lang, t=messages(lang), **context), status)
    resp.set_cookie(COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    resp.headers["Content-Language"] = lang
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


def error_page(exc: HTTPException) -> Response:
    """Portal errors are a readable page in the person's language, never a stack trace."""
    code = exc.code or 500
    key = {404: "not_found", 400: "bad_request"}.get(code, "server_error")
    return _page("error.html", status=code, code=code, message_key=key)
