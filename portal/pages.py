"""Rendering a portal page: the person's language, the signed-in state and CSRF token every
template's header needs, no caching of personal pages, and dates as the person's calendar
shows them. Every portal blueprint renders through here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from flask import Response, make_response, render_template
from werkzeug.exceptions import HTTPException

from consent import records
from consent.i18n import COOKIE, current_language, messages
from phr_core import budgets
from portal.session import csrf_token, current_subject

# The message shown for an HTTP error status (any other: "server_error").
ERROR_KEYS = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "bad_request"}
ERROR_KEYS |= {413: "too_large", 414: "url_too_long"}
JST = timezone(timedelta(hours=9), "JST")  # dates are shown as the person's calendar has them


def render(
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


def day(value: datetime | None) -> str:
    """A date as the person's calendar has it (JST), "" for none."""
    value = records.as_utc(value)
    return value.astimezone(JST).strftime("%Y-%m-%d") if value else ""


def problem(key: str, status: int = 400) -> Response:
    """A readable error page with one of the portal's messages; a 503 (a service it needs
    cannot answer now) says when to try again."""
    resp = render("error.html", status=status, code=status, message_key=key)
    if status == 503:
        resp.headers["Retry-After"] = str(budgets.RETRY_AFTER_S)
    return resp


def error_page(exc: HTTPException) -> Response:
    """Portal errors are a readable page in the person's language, never a stack trace."""
    code = exc.code or 500
    return problem(ERROR_KEYS.get(code, "server_error"), code)
