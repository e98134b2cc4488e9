"""A person's consent to a city (`/subjects/<subject>/municipalities/<code>/consent`), given and
withdrawn through the IdP or the portal, and account deletion (`/subjects/<subject>/forget`)."""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from consent import linkage
from consent.api.base import GRANTS_WRITE, body, box, json_response, language, reason, strings
from consent.api.consents import consent_document
from consent.auth import recorder, require
from consent.records import ConsentError
from phr_core.webapp import database

bp = Blueprint("city_consent", __name__)


@bp.post("/subjects/<path:subject>/municipalities/<code>/consent")
@require(GRANTS_WRITE, federated=True)
def consent_to_city(subject: str, code: str) -> ResponseReturnValue:
    data = body()
    attributes = data.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise ConsentError("attributes must be an object")
    include_children = data.get("include_children", True)
    if not isinstance(include_children, bool):
        raise ConsentError("include_children must be true or false")
    with database().session() as s:
        view, req = linkage.consent_to_municipality(
            s,
            box(),
            subject=subject,
            municipality=code,
            categories=strings(data, "categories"),
            attributes=attributes,
            include_children=include_children,
            recorded_by=recorder(),
            language=language(data),
        )
        out = {
            "consent": consent_document(view),
            "link_request": req.id if req else None,
            "linked": req is None,
        }
    return json_response(out, 201)


@bp.post("/subjects/<path:subject>/municipalities/<code>/consent/withdraw")
@require(GRANTS_WRITE, federated=True)
def withdraw_city(subject: str, code: str) -> ResponseReturnValue:
    data = request.get_json(silent=True) or {}
    with database().session() as s:
        views = linkage.withdraw_municipality(
            s,
            subject=subject,
            municipality=code,
            recorded_by=recorder(),
            reason=reason(data),
        )
        out = {"withdrawn": [v.id for v in views]}
    return json_response(out)


@bp.post("/subjects/<path:subject>/forget")
@require(GRANTS_WRITE, federated=True)
def forget_subject(subject: str) -> ResponseReturnValue:
    """Account deletion: withdraw everything, delete links; the consent trail stays."""
    with database().session() as s:
        out = linkage.forget_subject(s, subject=subject, recorded_by=recorder())
    return json_response({"subject": subject, **out})
