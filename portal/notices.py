"""The notices inbox page ("お知らせ / Notices"), with read/unread (see consent/notices.py).

Vaccination-due notices are worked out here, when the person opens the inbox: the consent
service keeps no birth dates and no records, so it reads them from the PHR servers with the
person's own authority (portal.federated: a child that moved has doses in two cities,
and both count), runs the schedule engine (portal.care.schedule)
for each child and for the person, and adds one notice per dose that is due, overdue or comes
within two weeks. Once added, a notice is also what apps with `consent/notices.read` see.
"""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, abort, redirect, request
from flask.typing import ResponseReturnValue

from consent import notices
from consent.i18n import current_language
from consent.models import Notice
from phr_core.webapp import database
from portal import pages, phr
from portal.care import schedule as engine
from portal.federated import reader
from portal.life_words import words
from portal.pages import JST
from portal.plus_pages import people
from portal.session import check_csrf, current_subject, sign_in_first

bp = Blueprint("portal_notices", __name__)


def notice_text(n: Notice, w: dict[str, str], lang: str = "ja") -> str:
    template = w.get(f"notice_{n.kind}_{n.relationship}", "")
    params = {k: str(v) for k, v in (n.params or {}).items()}
    if lang == "en" and "vaccine_en" in params:
        params["vaccine"] = params["vaccine_en"]
    if lang == "en" and "label_en" in params:
        params["label"] = params["label_en"]
    if "label" not in params and "dose" in params:  # notices filed before doses had names
        params["label"] = f"{params['dose']}回目" if lang == "ja" else f"dose {params['dose']}"
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


@bp.get("/me/notices")
def inbox() -> ResponseReturnValue:
    subject = current_subject()
    if subject is None:
        return sign_in_first()
    lang = current_language()
    w = words(lang)
    add_vaccinations_due(subject)
    with database().session() as s:
        items = [
            {
                "id": n.id,
                "text": notice_text(n, w, lang),
                "kind": n.kind,
                "date": pages.day(n.created_at),
                "unread": n.read_at is None,
            }
            for n in notices.inbox(s, subject)
        ]
        unread = notices.unread(s, subject)
    return pages.render("notices.html", w=w, items=items, unread=unread)


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


def add_vaccinations_due(subject: str, today: date | None = None) -> int:
    """Best effort: add the due-vaccination notices of the person's Patients (self and
    children); nothing happens when the PHR server cannot be asked right now."""
    today = today or datetime.now(JST).date()
    try:
        found = _due(subject, today)
    except (phr.SignedOut, phr.Unavailable, phr.NotReachable):
        return 0
    added = 0
    with database().session() as s:
        for (muni, code, rel), status in found:
            when = status.next_date or status.earliest or today
            added += notices.add_due(
                s,
                subject,
                municipality=muni,
                code=code,
                relationship=rel,
                vaccine=status.name_ja,
                vaccine_en=status.name_en,
                series=status.series,
                dose=status.number,
                label=status.label,  # the schedule's own name for the dose ("1期追加")
                label_en=status.label_en,
                due=when.isoformat(),
            )
    return added


def _due(subject: str, today: date) -> list[tuple[tuple[str, str, str], engine.DoseStatus]]:
    """Each person's doses due soon, with the (municipality, code, relationship) the notice is
    filed under (their first city's; one notice per dose, whichever city gave the others)."""
    found = reader(subject)
    out = []
    for person in people(found):
        if person.birth_date is None or not person.sources:
            continue
        doses = engine.doses_from(i for _, i in found.records(list(person.sources), "Immunization"))
        statuses = engine.schedule(person.birth_date, doses, today, person.sex)
        first = person.sources[0]
        who = (first.municipality, first.code, first.relationship)
        out += [(who, st) for st in engine.due_soon(statuses, today)]
    return out
