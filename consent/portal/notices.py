"""The notices inbox page ("お知らせ / Notices"), with read/unread (see consent/notices.py)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request
from flask.typing import ResponseReturnValue

from consent import notices
from consent.i18n import current_language
from consent.models import Notice
from consent.portal.auth import check_csrf, current_subject
from consent.portal.life_words import words
from consent.portal.views import _day, _page
from phr_core.webapp import database

bp = Blueprint("portal_notices", __name__)


def notice_text(n: Notice, w: dict[str, str]) -> str:
    template = w.get(f"notice_{n.kind}_{n.relationship}", "")
    params = {k: str(v) for k, v in (n.params or {}).items()}
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


@bp.get("/me/notices")
def inbox() -> ResponseReturnValue:
    subject = current_subject()
    if subject is None:
        return redirect("/auth/login")
    w = words(current_language())
    with database().session() as s:
        items = [
            {
                "id": n.id,
                "text": notice_text(n, w),
                "kind": n.kind,
                "date": _day(n.created_at),
                "unread": n.read_at is None,
            }
            for n in notices.inbox(s, subject)
        ]
        unread = notices.unread(s, subject)
    return _page("notices.html", w=w, items=items, unread=unread)


@bp.post("/me/notices/read")
def mark_read() -> ResponseReturnValue:
    subject = current_subject()
    if subject is None:
        abort(403)
    check_csrf()
    raw = request.form.get("id")
    notice_id = int(raw) if raw and raw.isdigit() else None
    if raw and notice_id is None:
        abort(400)
    with database().session() as s:
        notices.mark_read(s, subject, notice_id)
    return redirect("/me/notices", code=303)
