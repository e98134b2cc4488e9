""" "My data sources": each city the person (or a child of theirs) consented to, with the
consent's state, categories, the city's match and when records last arrived; consenting to a
city from the portal, and withdrawing with the choice to delete what was already loaded.

Consenting needs the card-verified attributes for the city's match (DESIGN.md). The portal
never keeps them: a person not yet linked is sent through the IdP once more (single sign-on,
no new prompt), and the back-channel code exchange asks for them (`phr_card_attributes`, only
for the portal, only after a card sign-in); they go straight into the encrypted link request.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, current_app, redirect, request, session
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, select

from consent import erasure, linkage, notices, records
from consent.i18n import current_language
from consent.models import Arrival, ConsentRecord, LinkRequest, Municipality, PatientLink
from consent.phr_erase import EraseUnavailable, PhrEraser, eraser
from consent.records import ACTIVE, CATEGORY_NAMES, PROVIDER, ConsentError
from federation import directory
from phr_core.webapp import database, settings
from portal import pages
from portal.life_words import words
from portal.session import check_csrf, client_id, current_subject, sign_in_first

bp = Blueprint("portal_sources", __name__)

PENDING_LINK = "link"  # session key: a city consent waiting for the card attributes
PENDING_LINK_S = 600


@bp.app_context_processor
def _menu_words() -> dict[str, Any]:
    """The index page's menu entries of these pages (templates/life_menu.html)."""
    return {"life_words": words, "life_unread": _unread}


def _unread() -> int:
    subject = current_subject()
    if subject is None:
        return 0
    with database().session() as s:
        return notices.unread(s, subject)


def phr_eraser() -> PhrEraser:
    """Made on first use: a platform without a PHR server still shows its pages."""
    found = current_app.extensions.get("consent_eraser")
    if found is None:
        found = current_app.extensions["consent_eraser"] = eraser(
            settings(), directory.of_app(current_app)
        )
    return found


def _signed_in() -> str:
    subject = current_subject()
    if subject is None:
        abort(403)
    return subject


def _category_names(codes: list[str], lang: str) -> list[str]:
    return [CATEGORY_NAMES[c][0 if lang == "ja" else 1] for c in codes if c in CATEGORY_NAMES]


def _sources(subject: str, lang: str) -> list[dict[str, Any]]:
    out = []
    with database().session() as s:
        cities = s.scalars(select(Municipality).order_by(Municipality.code)).all()
        for city in cities:
            views = [
                v
                for v in records.current(s, kind=PROVIDER, subject=subject, actor=city.code)
                if v.record.patient_code is None
            ]
            own = views[-1] if views else None
            link = s.scalar(
                select(PatientLink).where(
                    PatientLink.subject == subject, PatientLink.municipality == city.code
                )
            )
            last_request = s.scalar(
                select(LinkRequest)
                .where(LinkRequest.subject == subject, LinkRequest.municipality == city.code)
                .order_by(LinkRequest.created_at.desc())
                .limit(1)
            )
            children = [
                v
                for v in records.current(
                    s, kind=PROVIDER, subject=subject, actor=city.code, status=ACTIVE
                )
                if v.record.patient_code is not None
            ]
            pairs = [(city.code, link.code)] if link else []
            pairs += [(city.code, v.record.patient_code or "") for v in children]
            if link is not None:
                link_state = "link_linked"
            elif last_request is not None and last_request.status in ("pending", "no_match"):
                link_state = "link_" + last_request.status
            else:
                link_state = ""
            state = "state_none"
            if own is not None:
                state = "state_active" if own.state() == "active" else "state_withdrawn"
            out.append(
                {
                    "code": city.code,
                    "name": city.name_ja if lang == "ja" else city.name_en,
                    "state": state,
                    "active": state == "state_active",
                    "link_state": link_state if state == "state_active" else "",
                    "categories": _category_names(list(own.version.categories), lang)
                    if own
                    else [],
                    "children": len(children),
                    "last_update": pages.day(notices.last_arrival(s, pairs)),
                    "consent_id": own.id if own else None,
                    "linked": link is not None,
                }
            )
    return out


@bp.get("/me/sources")
def my_sources() -> ResponseReturnValue:
    subject = current_subject()
    if subject is None:
        return sign_in_first()
    lang = current_language()
    return pages.render(
        "sources.html",
        w=words(lang),
        sources=_sources(subject, lang),
        categories=[(c, n[0] if lang == "ja" else n[1]) for c, n in CATEGORY_NAMES.items()],
    )


@bp.post("/me/sources/<code>/consent")
def consent(code: str) -> ResponseReturnValue:
    subject = _signed_in()
    check_csrf()
    categories = [c for c in request.form.getlist("category") if c in records.CATEGORIES]
    if not categories:
        return problem_words("pick_category")
    include_children = request.form.get("children") == "1"
    with database().session() as s:
        if s.get(Municipality, code) is None:
            abort(404)
        linked = s.scalar(
            select(PatientLink.id).where(
                PatientLink.subject == subject, PatientLink.municipality == code
            )
        )
        if linked is not None:  # already matched: no attributes needed
            linkage.consent_to_municipality(
                s,
                current_app.extensions["consent_box"],
                subject=subject,
                municipality=code,
                categories=categories,
                attributes=None,
                include_children=include_children,
                recorded_by=client_id(),
                language=current_language(),
                collection_method="portal",
            )
            return redirect("/me/sources?consented=1", code=303)
    session[PENDING_LINK] = {
        "city": code,
        "categories": categories,
        "children": include_children,
        "lang": current_language(),
        "at": int(time.time()),
    }
    return redirect("/auth/login", code=303)


def pending_link() -> dict[str, Any] | None:
    """The city consent the person just asked for, if the sign-in it waits for comes within
    PENDING_LINK_S (an abandoned one must not be recorded at some later sign-in)."""
    found = session.get(PENDING_LINK)
    if not isinstance(found, dict) or not isinstance(found.get("at"), int):
        return None
    return found if time.time() - found["at"] <= PENDING_LINK_S else None


def finish_link(subject: str, pending: dict[str, Any], attributes: object) -> str:
    """After the sign-in the pending consent waited for: record it with the attributes the
    IdP sent over the back channel. Returns where to go next."""
    if not isinstance(attributes, dict):
        return "/me/sources?need_card=1"
    try:
        with database().session() as s:
            linkage.consent_to_municipality(
                s,
                current_app.extensions["consent_box"],
                subject=subject,
                municipality=str(pending.get("city")),
                categories=list(pending.get("categories") or []),
                attributes=attributes,
                include_children=bool(pending.get("children")),
                recorded_by=client_id(),
                language=str(pending.get("lang") or "ja"),
                collection_method="portal",
            )
    except ConsentError:
        return "/me/sources?need_card=1"
    return "/me/sources?consented=1"


@bp.get("/me/sources/<code>/withdraw")
def withdraw_page(code: str) -> ResponseReturnValue:
    """Withdraw (with the choice to delete what was loaded); after a withdrawal that kept the
    records, the same page deletes them later."""
    subject = current_subject()
    if subject is None:
        return sign_in_first()
    lang = current_language()
    with database().session() as s:
        city = s.get(Municipality, code)
        active = city is not None and linkage.self_consent(s, subject, code) is not None
        if city is None or not (active or _linked(s, subject, code)):
            abort(404)
        name = city.name_ja if lang == "ja" else city.name_en
        shared = erasure.plan(s, subject, municipality=code, children=True).shared_children
    return pages.render(
        "withdraw.html", w=words(lang), city=code, city_name=name, shared=shared, active=active
    )


def _linked(s: Any, subject: str, code: str) -> bool:
    return (
        s.scalar(
            select(PatientLink.id).where(
                PatientLink.subject == subject, PatientLink.municipality == code
            )
        )
        is not None
    )


@bp.post("/me/sources/<code>/withdraw")
def withdraw(code: str) -> ResponseReturnValue:
    """Withdraw first (extraction stops at once), then, if asked, erase what was loaded."""
    subject = _signed_in()
    check_csrf()
    delete_loaded = request.form.get("loaded") == "delete"
    with database().session() as s:
        active = linkage.self_consent(s, subject, code) is not None
        if not (active or _linked(s, subject, code)):
            abort(404)
        if active:
            linkage.withdraw_municipality(
                s,
                subject=subject,
                municipality=code,
                recorded_by=client_id(),
                reason="withdrawn in the portal",
            )
    if not delete_loaded:
        return redirect("/me/sources?withdrawn=1" if active else "/me/sources", code=303)
    with database().session() as s:
        plan = erasure.plan(
            s, subject, municipality=code, children=request.form.get("children") == "1"
        )
    try:
        counts = phr_eraser().erase(plan.erase)
    except EraseUnavailable:
        return problem_words("erase_failed_withdrawn" if active else "erase_failed", 503)
    forget_arrivals(plan.erase)
    return redirect(
        f"/me/sources?withdrawn=1&erased={counts.get('resources', 0)}"
        f"&shared={plan.shared_children}",
        code=303,
    )


def forget_arrivals(pairs: list[tuple[str, str]]) -> None:
    """The "last update" of records that are gone goes with them."""
    with database().session() as s:
        for city, code in pairs:
            s.execute(delete(Arrival).where(Arrival.municipality == city, Arrival.code == code))


def problem_words(key: str, status: int = 400) -> ResponseReturnValue:
    """A readable error page with one of this module's messages."""
    lang = current_language()
    return pages.render("life_error.html", status=status, code=status, message=words(lang)[key])


def provider_consents(subject: str) -> int:
    with database().session() as s:
        return len(
            {
                r.actor
                for r in s.scalars(
                    select(ConsentRecord).where(
                        ConsentRecord.subject == subject,
                        ConsentRecord.kind == PROVIDER,
                        ConsentRecord.status == ACTIVE,
                    )
                )
            }
        )
