"""The pages a person sees during an authorization: sign-in (pluggable methods) and consent.

Both work on a parked request (`?req=`) made by the authorization endpoint, and send the
browser back to `/authorize/resume` when done."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request
from flask import session as flask_session
from flask.typing import ResponseReturnValue
from sqlalchemy import Row, bindparam, delete, update
from sqlalchemy.orm import Session

from idp import grants, sessions
from idp.card.authapp.views import login_link as authapp_link
from idp.card.sessions import create_card_session, take_verified
from idp.card.views import panel_context
from idp.clients import ClientView, get_client
from idp.context import ACR_CARD, ACR_DEV, IdP, acr_satisfies, idp
from idp.endpoints.authorize import error_page, expired_page, redirect_denied, refused_page
from idp.grants import GrantUnavailable
from idp.i18n import MESSAGES, pick_language
from idp.models import AuthRequest, Person
from idp.passkey.views import panel_context as passkey_panel
from idp.patient_choice import PatientChoice
from idp.rows import row_by_key, table_of
from idp.tokens import aware, now_utc
from phr_core.grant_description import describe, is_data_scope
from phr_core.grant_description import words as describe_words

bp = Blueprint("interaction", __name__, template_folder="../templates")

DEMO_NAMESPACE = uuid.UUID("6f1e2b4c-7d0a-4c55-9a55-0d3b1b6f0a11")
DEMO_PEOPLE = 20


_PARKED = table_of(AuthRequest)
_SET_PARAMS = (  # built once: a third of the CPU of the same UPDATE through the ORM
    update(_PARKED).where(_PARKED.c.id == bindparam("b_id")).values(params=bindparam("b_params"))
)


def _parked(s: Session) -> Row[Any] | None:
    """The parked request of `?req=` (idp.rows: its columns, read-only), if still waiting."""
    row = row_by_key(s, AuthRequest, request.values.get("req", ""))
    if row is None or row.pushed or aware(row.expires_at) < now_utc():
        return None
    return row


def _resume(s: Session, row: Row[Any], flag: str, **changes: str) -> ResponseReturnValue:
    """Mark the step done on the parked request (with `changes` to its parameters) and send
    the browser back to the authorization endpoint."""
    s.execute(_SET_PARAMS, {"b_id": row.id, "b_params": {**row.params, **changes, flag: "1"}})
    return redirect(f"/authorize/resume?req={row.id}")


def demo_person_id(number: int) -> str:
    """Development sign-in: demo citizen N is always the same internal person."""
    return str(uuid.uuid5(DEMO_NAMESPACE, f"demo-citizen-{number}"))


@bp.get("/login")
def login() -> ResponseReturnValue:
    ctx = idp()
    with ctx.db.session() as s:
        row = _parked(s)
        if row is None:
            return expired_page()
        client = get_client(s, row.client_id)
        lang = pick_language(row.params.get("ui_locales"))
        required = row.params.get("_required_acr") or None
        card_session = create_card_session(s, purpose="login")
        # Only this browser may take the result of its card session.
        flask_session["card_session"] = card_session.id
        card = panel_context(card_session, f"/login/card?req={row.id}", lang)
        return render_template(
            "idp_login.html",
            t=MESSAGES[lang],
            lang=lang,
            req=row.id,
            app=client.name if client else row.client_id,
            card=card,
            authapp=authapp_link(row.id, lang),
            passkey=passkey_panel(row.id, required, lang),
            dev=not ctx.settings.production and acr_satisfies(ACR_DEV, required),
            card_required=required == ACR_CARD,
            csrf=sessions.csrf_token(),
        )


@bp.get("/login/card")
def login_card() -> ResponseReturnValue:
    """Where the card panel sends the browser once the card reader's signature verified."""
    ctx = idp()
    with ctx.db.session() as s:
        row = _parked(s)
        if row is None:
            return expired_page()
        result = take_verified(s, flask_session.pop("card_session", ""))
        if result is None:
            return redirect(f"/login?req={row.id}")
        sessions.start(s, result.person_id, result.acr, list(result.amr))
        return _resume(s, row, "_login_done")


@bp.post("/login/dev")
def login_dev() -> ResponseReturnValue:
    """Development sign-in as a numbered demo citizen (acr `urn:phr:acr:dev`)."""
    ctx = idp()
    if ctx.settings.production:
        abort(404)
    sessions.check_csrf()
    raw = request.form.get("person", "")
    if not raw.isdigit() or not 1 <= int(raw) <= DEMO_PEOPLE:
        abort(400, description=f"demo citizen number must be 1–{DEMO_PEOPLE}")
    with ctx.db.session() as s:
        row = _parked(s)
        if row is None:
            return expired_page()
        person_id = demo_person_id(int(raw))
        # Held while sessions.start looks for it again: the identity map keeps only what is
        # referenced, and a dropped row would cost a second SELECT.
        person = s.get(Person, person_id)
        if person is None:
            person = Person(id=person_id)
            s.add(person)
            s.flush()
        sessions.start(s, person_id, ACR_DEV, ["dev"])
        return _resume(s, row, "_login_done")


@bp.get("/consent")
def consent() -> ResponseReturnValue:
    ctx = idp()
    with ctx.db.session() as s:
        row = _parked(s)
        login = sessions.current(s)
        if row is None or login is None:
            return expired_page()
        lang = pick_language(row.params.get("ui_locales"))
        client = get_client(s, row.client_id)
        if client is None:
            return refused_page("unknown_client", "unknown client_id", lang)
        scope = row.params.get("scope", "").split()
        try:
            choices = _patient_choices(ctx, s, login.person_id, scope)
        except GrantUnavailable:
            return error_page(MESSAGES[lang]["consent_unavailable"], 503, lang)
        return _consent_page(row.id, client, lang, scope, choices)


def _consent_page(
    req: str,
    client: ClientView,
    lang: str,
    scope: list[str],
    choices: list[PatientChoice] | None,
    status: int = 200,
    problem: str | None = None,
    ticked: list[str] | None = None,
) -> ResponseReturnValue:
    """The app's request described as the portal will describe the grant
    (phr_core.grant_description); each kind of data a checkbox, ticked as asked."""
    only = choices[0] if choices is not None and len(choices) == 1 else None
    return (
        render_template(
            "idp_consent.html",
            t=MESSAGES[lang],
            lang=lang,
            req=req,
            grant=describe(grants.description_facts(client, scope, only), lang),
            ticked=set(scope if ticked is None else ticked),
            choices=[(c.id, c.label(lang)) for c in choices] if choices is not None else None,
            problem=problem,
            csrf=sessions.csrf_token(),
        ),
        status,
    )


def _patient_choices(
    ctx: IdP, s: Session, person_id: str, scope: list[str]
) -> list[PatientChoice] | None:
    """The records a `patient/`-scoped app could be opened on (None: no patient context)."""
    if not grants.wants_patient(scope):
        return None
    return ctx.grants.patients(ctx, s, person_id)


def chosen_scopes(asked: list[str]) -> tuple[list[str], str | None]:
    """The scopes the person left ticked, in the order asked, and the words of a refusal.

    The screen sends `scopes_offered` with its checkboxes; a form without it (a script that
    predates the checkboxes) approves the request as shown. A ticked box the app did not ask
    for is refused, and so is unticking every kind of data (that is what 許可しない is for)."""
    data = [sc for sc in asked if is_data_scope(sc)]
    if not request.form.get("scopes_offered"):
        return asked, None
    ticked = request.form.getlist("scope")
    if set(ticked) - set(data):
        return [], "data_not_asked"
    if data and not set(ticked) & set(data):
        return [], "data_none"
    return [sc for sc in asked if not is_data_scope(sc) or sc in ticked], None


@bp.post("/consent")
def consent_decision() -> ResponseReturnValue:
    ctx = idp()
    sessions.check_csrf()
    with ctx.db.session() as s:
        row = _parked(s)
        login = sessions.current(s)
        if row is None or login is None:
            return expired_page()
        if request.form.get("decision") != "allow":
            s.execute(delete(AuthRequest).where(AuthRequest.id == row.id))
            return redirect_denied(ctx, row.params)
        lang = pick_language(row.params.get("ui_locales"))
        client = get_client(s, row.client_id)
        if client is None:
            return refused_page("unknown_client", "unknown client_id", lang)
        scope = row.params.get("scope", "").split()
        chosen, refusal = chosen_scopes(scope)
        try:
            choices = _patient_choices(ctx, s, login.person_id, scope)
            if refusal is not None:
                ticked = request.form.getlist("scope")
                problem = describe_words(lang, refusal)
                return _consent_page(row.id, client, lang, scope, choices, 400, problem, ticked)
            patient = None
            if choices:
                picked = request.form.get("patient") or (choices[0].id if len(choices) == 1 else "")
                if picked not in {c.id for c in choices}:
                    t = MESSAGES[lang]
                    return _consent_page(
                        row.id, client, lang, scope, choices, 400, t["patient_pick"], chosen
                    )
                patient = next(c for c in choices if c.id == picked)
            details = grants.description_facts(client, chosen, patient).details()
            ctx.grants.record(
                ctx, s, login.person_id, client, chosen, lang,
                patient=patient.id if patient else None, details=details,
            )  # fmt: skip
        except GrantUnavailable:
            return error_page(MESSAGES[lang]["consent_unavailable"], 503, lang)
        # The code and its tokens carry what was chosen, not what was asked (the resumed
        # request finds the grant for exactly these scopes).
        return _resume(s, row, "_consent_done", scope=" ".join(chosen))
