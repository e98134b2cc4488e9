"""Any consent (both kinds) as the API shows it: a subject's current consents, one consent,
its history, its receipt and its FHIR Consent (`/consents/<id>`, `/subjects/<subject>/consents`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from consent import receipts, records
from consent.api.base import GRANTS_READ, GRANTS_WRITE, json_response, not_found
from consent.auth import require
from consent.records import ConsentView
from phr_core.webapp import database, settings

bp = Blueprint("consents", __name__)


def consent_document(view: ConsentView) -> dict[str, object]:
    """Any consent as the API shows it (both kinds)."""
    v = view.version
    r = view.record
    return {
        "id": r.id,
        "kind": r.kind,
        "status": view.state(),
        "subject": r.subject,
        "actor": r.actor,
        "actor_name": v.actor_name,
        "patient": (
            {"municipality": r.patient_municipality, "code": r.patient_code}
            if r.patient_code
            else None
        ),
        "categories": list(v.categories),
        "scopes": list(v.scopes),
        "actions": list(v.actions),
        "purpose": v.purpose,
        "period": {
            "start": records.iso(records.as_utc(v.period_start)),
            "end": records.iso(records.as_utc(v.period_end)),
        },
        "version": v.version,
        "recorded_at": records.iso(records.as_utc(v.recorded_at)),
    }


@bp.get("/subjects/<path:subject>/consents")
@require(GRANTS_WRITE, GRANTS_READ, federated=True)
def list_consents(subject: str) -> ResponseReturnValue:
    with database().session() as s:
        docs = [consent_document(v) for v in records.current(s, subject=subject)]
    return json_response({"subject": subject, "consents": docs})


@bp.get("/subjects/<path:subject>/consents/fhir")
@require(GRANTS_WRITE, GRANTS_READ)
def subject_consents_fhir(subject: str) -> ResponseReturnValue:
    with database().session() as s:
        bundle = receipts.fhir_bundle(records.current(s, subject=subject), settings())
    return json_response(bundle)


def _with_consent(consent_id: str, render: Callable[[Any, ConsentView], object]) -> Response:
    with database().session() as s:
        version = request.args.get("version", type=int)
        view = records.get(s, consent_id, version=version)
        if view is None:
            return not_found("consent")
        return json_response(render(s, view))


@bp.get("/consents/<consent_id>")
@require(GRANTS_READ, GRANTS_WRITE)
def get_consent(consent_id: str) -> ResponseReturnValue:
    return _with_consent(consent_id, lambda s, v: consent_document(v))


@bp.get("/consents/<consent_id>/history")
@require(GRANTS_READ, GRANTS_WRITE)
def consent_history(consent_id: str) -> ResponseReturnValue:
    def render(s: Any, view: ConsentView) -> object:
        versions = records.history(s, consent_id)
        return {
            "id": consent_id,
            "versions": [
                consent_document(ConsentView(view.record, v)) | {"event": v.event} for v in versions
            ],
        }

    return _with_consent(consent_id, render)


@bp.get("/consents/<consent_id>/receipt")
@require(GRANTS_READ, GRANTS_WRITE)
def consent_receipt(consent_id: str) -> ResponseReturnValue:
    resp = _with_consent(
        consent_id,
        lambda s, v: receipts.receipt(v, records.history(s, consent_id), settings()),
    )
    if resp.status_code == 200 and request.args.get("download"):
        version = resp.get_json()["record_version"]
        resp.headers["Content-Disposition"] = (
            f'attachment; filename="consent-receipt-{consent_id}-v{version}.json"'
        )
    return resp


@bp.get("/consents/<consent_id>/fhir")
@require(GRANTS_READ, GRANTS_WRITE)
def consent_fhir(consent_id: str) -> ResponseReturnValue:
    return _with_consent(consent_id, lambda s, v: receipts.fhir_consent(v, settings()))
