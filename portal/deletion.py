"""Deleting an account's data, in two steps with a clear confirmation.

Step 1 (`GET /me/delete`) says what goes and what stays and asks whether the children's records
go too; step 2 (`POST /me/delete/review`) shows the counts and needs an explicit "I understand";
only then `POST /me/delete` acts: first the PHR server erases the records (so, should it fail,
nothing was changed and the person can try again), then every consent is withdrawn (app grants
too: the IdP refuses the apps' next refresh and the PHR server their next read), links,
guardianships and notices are deleted. The consent trail and the AuditEvents stay.
"""

from __future__ import annotations

from flask import Blueprint, redirect, request, session
from flask.typing import ResponseReturnValue
from sqlalchemy import delete

from consent import erasure, linkage, notices
from consent.i18n import current_language
from consent.models import PortalTokens
from consent.phr_erase import EraseUnavailable
from phr_core.webapp import database
from portal import pages
from portal.auth import forget_tokens
from portal.life_words import words
from portal.session import (
    TOKENS,
    check_csrf,
    client_id,
    current_subject,
    sign_in_first,
    signed_in_issuer,
)
from portal.sources import forget_arrivals, phr_eraser, problem_words, provider_consents
from portal.views import app_grants

bp = Blueprint("portal_deletion", __name__)


@bp.get("/me/delete")
def start() -> ResponseReturnValue:
    if current_subject() is None:
        return sign_in_first()
    return pages.render("delete.html", w=words(current_language()))


@bp.post("/me/delete/review")
def review() -> ResponseReturnValue:
    subject = current_subject()
    if subject is None:
        return sign_in_first()
    check_csrf()
    lang = current_language()
    children = request.form.get("children") == "1"
    with database().session() as s:
        plan = erasure.plan(s, subject, children=children)
    return pages.render(
        "delete_review.html",
        w=words(lang),
        children=children,
        cities=provider_consents(subject),
        apps=len(app_grants(subject, lang)),
        patients=len(plan.erase),
        shared=plan.shared_children,
    )


@bp.post("/me/delete")
def delete_account() -> ResponseReturnValue:
    subject = current_subject()
    if subject is None:
        return sign_in_first()
    check_csrf()
    if request.form.get("understood") != "1":
        return redirect("/me/delete", code=303)
    with database().session() as s:
        plan = erasure.plan(s, subject, children=request.form.get("children") == "1")
    try:
        counts = phr_eraser().erase(plan.erase)
    except EraseUnavailable:
        return problem_words("erase_failed", 503)
    forget_arrivals(plan.erase)
    with database().session() as s:
        linkage.forget_subject(s, subject=subject, recorded_by=client_id())
        notices.forget(s, subject)
    lang = current_language()
    handle, issuer = session.get(TOKENS), signed_in_issuer()
    session.clear()
    if isinstance(handle, str):
        forget_tokens(handle, issuer)  # this browser's tokens, revoked at the IdP
    with database().session() as s:  # any other browser's stored tokens go too
        s.execute(delete(PortalTokens).where(PortalTokens.subject == subject))
    return pages.render(
        "deleted.html", w=words(lang), resources=counts.get("resources", 0), signed_out=True
    )
