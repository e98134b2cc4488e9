"""Portal pages: server-rendered HTML that works on a phone without JavaScript."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, redirect
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent import records
from consent.i18n import current_language
from consent.linkage import GUARDIANSHIP_END_AGE
from consent.models import Municipality, utcnow
from consent.records import CATEGORY_NAMES, RECIPIENT
from phr_core.grant_description import GrantFacts, day, describe
from phr_core.webapp import database
from portal import home, pages, plus_pages
from portal.session import check_csrf, client_id, current_subject, sign_in_first

bp = Blueprint("portal", __name__, template_folder="templates")


@bp.get("/")
def index() -> ResponseReturnValue:
    """The home page; signed in, it answers "what's next" (portal.home)."""
    with database().session() as s:
        cities = s.scalars(select(Municipality).order_by(Municipality.code)).all()
    subject = current_subject()
    if subject is None:
        return pages.render("index.html", municipalities=cities)
    lang = current_language()
    first_step = home.needs_city_consent(subject)
    return pages.render(
        "index.html",
        words=plus_pages.words,
        municipalities=cities,
        first_step=first_step,
        children=[] if first_step else home.children_next(subject, lang),
        unread=home.unread_notices(subject),
        today=datetime.now(pages.JST).date().isoformat(),
    )


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    """The privacy notice every consent and receipt points to (policyUrl); no sign-in needed."""
    return pages.render(
        "privacy.html", categories=list(CATEGORY_NAMES.items()), end_age=GUARDIANSHIP_END_AGE
    )


def app_grants(subject: str, lang: str) -> list[dict[str, object]]:
    """The person's active app grants (not the portal's own sign-in), oldest first, each
    described as the consent screen described it (phr_core.grant_description)."""
    now = utcnow()
    own = client_id()
    with database().session() as s:
        views = records.current(s, kind=RECIPIENT, subject=subject, status=records.ACTIVE)
        return [
            {
                "id": v.id,
                "grant": describe(
                    GrantFacts.of_grant(
                        v.version.details,
                        app=v.version.actor_name,
                        scopes=list(v.version.scopes),
                        expires=records.as_utc(v.version.period_end),
                        purpose=v.version.purpose,
                    ),
                    lang,
                ),
                "granted": pages.day(v.record.created_at),
                "granted_words": day(records.as_utc(v.record.created_at), lang),
            }
            for v in views
            if v.record.actor != own and v.state(now) == "active"
        ]


@bp.get("/me/apps")
def my_apps() -> ResponseReturnValue:
    """ "Who can see my data": every app with an active grant, each with a revoke button."""
    subject = current_subject()
    if subject is None:
        return sign_in_first()
    lang = current_language()
    return pages.render("apps.html", grants=app_grants(subject, lang))


@bp.post("/me/apps/<grant_id>/revoke")
def revoke_app(grant_id: str) -> ResponseReturnValue:
    """Withdraw one app grant, as the consent API's revoke does; the IdP refuses the app's next
    refresh and the PHR server its next read."""
    subject = current_subject()
    if subject is None:
        abort(403)
    check_csrf()
    with database().session() as s:
        revoked = records.revoke_grant(
            s,
            grant_id,
            lambda owner: owner == subject,
            recorded_by=client_id(),
            reason="revoked in the portal",
        )
        if revoked is None:
            abort(404)
    return redirect("/me/apps?revoked=1", code=303)
