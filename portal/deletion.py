"""Deleting an account's data, in two steps with a clear confirmation.

Step 1 (`GET /me/delete`) says what goes and what stays and asks whether the children's records
go too; step 2 (`POST /me/delete/review`) shows the counts and needs an explicit "I understand";
only then `POST /me/delete` acts: first the PHR server erases the records (so, should it fail,
nothing was changed and the person can try again), then every consent is withdrawn (app grants
too: the IdP refuses the apps' next refresh and the PHR server their next read), links,
guardianships and notices are deleted, and last the IdP forgets the person (their card
binding, attributes, passkeys and sessions: idp/endpoints/person_erase.py); should that fail,
the page says so and the person, still signed in, tries again (every step before is harmless to
repeat). The browser then ends its IdP sign-in too (RP-initiated logout), so the next click
asks for the card again, and comes back to the portal's home, which says what was done.
The consent trail and the AuditEvents stay (docs/retention.md); the delete page offers them,
with the records, in the download before anything is deleted.
"""

from __future__ import annotations

from flask import Blueprint, redirect, request, session
from flask.typing import ResponseReturnValue
from sqlalchemy import delete

from consent import erasure, linkage, notices
from consent.i18n import current_language
from consent.models import PortalTokens
from consent.phr_erase import EraseUnavailable
from phr_core.catalogs import tables
from phr_core.webapp import database
from portal import pages
from portal.auth import end_session_url, forget_tokens
from portal.idp_client import EraseRefused, erase_person
from portal.life_words import words
from portal.session import (
    ID_TOKEN,
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

ERASE_WORDS = tables("portal.erase")  # phr_core/translations, this feature's own block
FAREWELL = "deleted"  # in the emptied session: what the home page says once, after the IdP


def erase_words(lang: str) -> dict[str, str]:
    return {**words(lang), **ERASE_WORDS[lang]}


@bp.get("/me/delete")
def start() -> ResponseReturnValue:
    if current_subject() is None:
        return sign_in_first()
    return pages.render("delete.html", w=erase_words(current_language()))


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
    handle, issuer, id_token = session.get(TOKENS), signed_in_issuer(), session.get(ID_TOKEN)
    idp_erased = False
    if isinstance(id_token, str):
        try:
            idp_erased = erase_person(issuer, id_token)
        except EraseRefused:
            w = erase_words(lang)
            return pages.render("life_error.html", status=503, code=503, message=w["idp_failed"])
    resources = counts.get("resources", 0)
    session.clear()
    if isinstance(handle, str):
        forget_tokens(handle, issuer)  # this browser's tokens, revoked at the IdP
    with database().session() as s:  # any other browser's stored tokens go too
        s.execute(delete(PortalTokens).where(PortalTokens.subject == subject))
    end = end_session_url(issuer, id_token, lang)
    if end is not None:
        session[FAREWELL] = {"resources": resources, "lang": lang, "idp": idp_erased}
        return redirect(end, code=303)
    return farewell(resources, lang, idp_erased)


def farewell(resources: int, lang: str, idp_erased: bool) -> ResponseReturnValue:
    w = erase_words(lang)
    return pages.render(
        "deleted.html", w=w, resources=resources, idp_erased=idp_erased, signed_out=True
    )


@bp.before_app_request
def _back_from_the_idp() -> ResponseReturnValue | None:
    """The IdP's sign-out returns to the portal's home: there, once, what was deleted."""
    if request.path != "/" or request.method != "GET" or FAREWELL not in session:
        return None
    done = session.pop(FAREWELL)
    if not isinstance(done, dict):
        return None
    lang = str(done.get("lang", current_language()))
    return farewell(int(done.get("resources", 0)), lang, bool(done.get("idp")))
