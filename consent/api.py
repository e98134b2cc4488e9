"""The consent API (`/api/v1`, documented in consent/API.md) for the IdP, the PHR server and the
municipal connectors. Every route names the scopes it accepts; the PHR server's two questions
are answered from the in-process cache (consent.cache)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent import linkage, receipts, records
from consent.auth import in_callers_namespace, namespaced, oauth_error, recorder, require
from consent.cache import ConsentCache
from consent.linkage import AttributeBox, Conflict, NotFound
from consent.models import Municipality, utcnow
from consent.records import RECIPIENT, ConsentError, ConsentView, grant_key, patients_key
from phr_core.webapp import database, settings

bp = Blueprint("consent_api", __name__, url_prefix="/api/v1")

GRANTS_READ = "consent/grants.read"
GRANTS_WRITE = "consent/grants.write"
PATIENTS_READ = "consent/patients.read"
LINKAGE = "consent/linkage"

# The connector asks for its vaccination source as `immunization` (the FHIR resource name).
CATEGORY_ALIASES = {"immunization": "vaccination"}
DEFAULT_GRANT_DAYS = 365  # an app grant without expires_at lasts a year (consent.md §8)
MAX_FIELD = 255
MAX_DETAILS = 8000  # an app's words and links as shown on the consent screen


def cache() -> ConsentCache:
    return current_app.extensions["consent_cache"]


def box() -> AttributeBox:
    return current_app.extensions["consent_box"]


@bp.errorhandler(ConsentError)
def _invalid(exc: ConsentError) -> Response:
    return oauth_error(400, "invalid_request", str(exc))


def _not_found(what: str) -> Response:
    return oauth_error(404, "not_found", f"no such {what}")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ConsentError("the body must be a JSON object")
    return data


def _text(data: dict[str, Any], name: str, *, required: bool = True, limit: int = MAX_FIELD) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise ConsentError(f"{name} must be a string of 1 to {limit} characters")
    return value


def _strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConsentError(f"{name} must be a list of strings")
    return value


def _json(payload: object, status: int = 200) -> Response:
    resp = jsonify(payload)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- PHR server: answered from the cache --------------------------------------------------------


def _load_grant(grant_id: str) -> tuple[dict[str, object], bool, datetime | None] | None:
    with database().session() as s:
        view = records.get(s, grant_id)
        if view is None or view.record.kind != RECIPIENT:
            return None
        doc = records.grant_document(view)
        return doc, view.version.status != records.ACTIVE, records.as_utc(view.version.period_end)


def grant_status(grant_id: str, now: datetime | None = None) -> dict[str, object] | None:
    """The grant document from the cache, its status computed now (expiry needs no eviction)."""
    hit = cache().get(grant_key(grant_id), lambda: _load_grant(grant_id))
    if hit is None:
        return None
    doc, revoked, end = hit
    if revoked:
        status = "revoked"
    elif end is not None and end <= (now or utcnow()):
        status = "expired"
    else:
        status = "active"
    return {**doc, "status": status}


@bp.get("/grants/<grant_id>")
@require(GRANTS_READ, GRANTS_WRITE, federated=True)
def get_grant(grant_id: str) -> ResponseReturnValue:
    doc = grant_status(grant_id)
    if doc is None or not in_callers_namespace(str(doc.get("subject", ""))):
        return _not_found("grant")
    return _json(doc)


def _load_patients(subject: str) -> list[tuple[str, str, str, Any]]:
    with database().session() as s:
        return linkage.patients(s, subject)


def _load_city_names() -> dict[str, tuple[str, str]]:
    with database().session() as s:
        return {m.code: (m.name_ja, m.name_en) for m in s.scalars(select(Municipality))}


def patient_list(subject: str, now: datetime | None = None) -> list[dict[str, str]]:
    """Self links and children under current guardianship, from the cache. Each names its city
    and, for a child, the birth month, so that a chooser (the IdP's SMART patient picker) can
    label them without knowing anyone's name."""
    today = (now or utcnow()).date()
    rows = cache().get(patients_key(subject), lambda: _load_patients(subject))
    names = cache().get("municipality-names", _load_city_names)
    out: list[dict[str, str]] = []
    for city, code, rel, ends in rows:
        if ends is not None and ends <= today:
            continue
        ja, en = names.get(city, (city, city))
        item = {
            "municipality": city,
            "code": code,
            "relationship": rel,
            "municipality_name": ja,
            "municipality_name_en": en,
        }
        if ends is not None:  # the guardianship ends on the child's birthday
            item["birth_month"] = f"{ends.year - linkage.GUARDIANSHIP_END_AGE:04d}-{ends.month:02d}"
        out.append(item)
    return out


@bp.get("/subjects/<path:subject>/patients")
@require(PATIENTS_READ, federated=True)
def get_patients(subject: str) -> ResponseReturnValue:
    return _json({"subject": subject, "patients": patient_list(subject)})


# --- IdP: app grants ------------------------------------------------------------------------


@bp.post("/grants")
@require(GRANTS_WRITE, federated=True)
def create_grant() -> ResponseReturnValue:
    data = _body()
    scopes = _strings(data, "scopes")
    if not scopes:
        raise ConsentError("scopes must name at least one scope")
    expires = records.parse_time(data.get("expires_at"), "expires_at")
    now = utcnow()
    with database().session() as s:
        view = records.create(
            s,
            kind=RECIPIENT,
            subject=namespaced(_text(data, "subject")),
            actor=_text(data, "client_id"),
            actor_name=_text(data, "client_name", required=False, limit=200),
            categories=_strings(data, "categories"),
            scopes=scopes,
            purpose=_text(data, "purpose", required=False, limit=2000),
            period_end=expires or now + timedelta(days=DEFAULT_GRANT_DAYS),
            recorded_by=recorder(),
            collection_method=_text(data, "collection_method", required=False, limit=64)
            or "idp-consent-screen",
            language=_language(data),
            now=now,
            details=_details(data),
        )
        doc = records.grant_document(view, now)
    resp = _json(doc, 201)
    resp.headers["Location"] = f"{request.root_url.rstrip('/')}/api/v1/grants/{doc['id']}"
    return resp


def _details(data: dict[str, Any]) -> dict[str, Any] | None:
    """What the person was shown about the app (phr_core.grant_description), kept for the
    portal: an object of bounded size, or none."""
    value = data.get("details")
    if value is None:
        return None
    if not isinstance(value, dict) or len(json.dumps(value)) > MAX_DETAILS:
        raise ConsentError(f"details must be an object of at most {MAX_DETAILS} characters")
    return value


def _language(data: dict[str, Any]) -> str:
    lang = data.get("language", "ja")
    if lang not in ("ja", "en"):
        raise ConsentError("language must be ja or en")
    return lang


@bp.get("/subjects/<path:subject>/grants")
@require(GRANTS_WRITE, GRANTS_READ, federated=True)
def list_grants(subject: str) -> ResponseReturnValue:
    client_id = request.args.get("client_id")
    every = request.args.get("status") == "all"
    now = utcnow()
    with database().session() as s:
        views = records.current(s, kind=RECIPIENT, subject=subject, actor=client_id or None)
        docs = [records.grant_document(v, now) for v in views]
    if not every:
        docs = [d for d in docs if d["status"] == "active"]
    return _json({"subject": subject, "grants": docs})


@bp.post("/grants/<grant_id>/revoke")
@require(GRANTS_WRITE, federated=True)
def revoke_grant(grant_id: str) -> ResponseReturnValue:
    data = request.get_json(silent=True) or {}
    reason = data.get("reason") if isinstance(data, dict) else None
    with database().session() as s:
        view = records.revoke_grant(
            s,
            grant_id,
            in_callers_namespace,
            recorded_by=recorder(),
            reason=reason if isinstance(reason, str) else None,
        )
        if view is None:
            return _not_found("grant")
        doc = records.grant_document(view)
    return _json(doc)


# --- IdP / portal: a person's consent to a city ------------------------------------------------


@bp.post("/subjects/<path:subject>/municipalities/<code>/consent")
@require(GRANTS_WRITE, federated=True)
def consent_to_city(subject: str, code: str) -> ResponseReturnValue:
    data = _body()
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
            categories=_strings(data, "categories"),
            attributes=attributes,
            include_children=include_children,
            recorded_by=recorder(),
            language=_language(data),
        )
        out = {
            "consent": consent_document(view),
            "link_request": req.id if req else None,
            "linked": req is None,
        }
    return _json(out, 201)


@bp.post("/subjects/<path:subject>/municipalities/<code>/consent/withdraw")
@require(GRANTS_WRITE, federated=True)
def withdraw_city(subject: str, code: str) -> ResponseReturnValue:
    data = request.get_json(silent=True) or {}
    reason = data.get("reason") if isinstance(data, dict) else None
    with database().session() as s:
        views = linkage.withdraw_municipality(
            s,
            subject=subject,
            municipality=code,
            recorded_by=recorder(),
            reason=reason if isinstance(reason, str) else None,
        )
        out = {"withdrawn": [v.id for v in views]}
    return _json(out)


@bp.get("/subjects/<path:subject>/consents")
@require(GRANTS_WRITE, GRANTS_READ, federated=True)
def list_consents(subject: str) -> ResponseReturnValue:
    with database().session() as s:
        docs = [consent_document(v) for v in records.current(s, subject=subject)]
    return _json({"subject": subject, "consents": docs})


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


@bp.get("/subjects/<path:subject>/consents/fhir")
@require(GRANTS_WRITE, GRANTS_READ)
def subject_consents_fhir(subject: str) -> ResponseReturnValue:
    with database().session() as s:
        bundle = receipts.fhir_bundle(records.current(s, subject=subject), settings())
    return _json(bundle)


@bp.post("/subjects/<path:subject>/forget")
@require(GRANTS_WRITE, federated=True)
def forget_subject(subject: str) -> ResponseReturnValue:
    """Account deletion: withdraw everything, delete links; the consent trail stays."""
    with database().session() as s:
        out = linkage.forget_subject(s, subject=subject, recorded_by=recorder())
    return _json({"subject": subject, **out})


# --- any consent: history, receipt, FHIR --------------------------------------------------------


def _with_consent(consent_id: str, render: Callable[[Any, ConsentView], object]) -> Response:
    with database().session() as s:
        version = request.args.get("version", type=int)
        view = records.get(s, consent_id, version=version)
        if view is None:
            return _not_found("consent")
        return _json(render(s, view))


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


# --- connectors ---------------------------------------------------------------------------------


def _city_exists(code: str) -> bool:
    with database().session() as s:
        return s.get(Municipality, code) is not None


SINCE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@bp.get("/municipalities/<code>/consents")
@require(LINKAGE, municipality_arg="code")
def city_consents(code: str) -> ResponseReturnValue:
    category = request.args.get("category", "")
    category = CATEGORY_ALIASES.get(category, category)
    if category not in records.CATEGORIES:
        raise ConsentError("category must be one of: " + ", ".join(records.CATEGORIES))
    if not _city_exists(code):
        return _not_found("municipality")
    now = utcnow()
    with database().session() as s:
        since = linkage.consented_since(s, code, category, now)
    codes = sorted(since)
    return _json(
        {
            "municipality": code,
            "category": category,
            "as_of": records.iso(now),
            "codes": codes,
            # fixed width (microseconds always), so the texts sort as the times do
            "since": {c: since[c].astimezone(UTC).strftime(SINCE_FORMAT) for c in codes},
        }
    )


@bp.get("/municipalities/<code>/link-requests")
@require(LINKAGE, municipality_arg="code")
def city_link_requests(code: str) -> ResponseReturnValue:
    with database().session() as s:
        pending = linkage.pending_requests(s, box(), code)
    return _json({"municipality": code, "requests": pending})


@bp.post("/municipalities/<code>/link-requests/<request_id>")
@require(LINKAGE, municipality_arg="code")
def answer_link_request(code: str, request_id: str) -> ResponseReturnValue:
    data = _body()
    no_match = data.get("status") == "no_match"
    if not no_match and "status" in data and data["status"] != "matched":
        raise ConsentError("status must be matched or no_match")
    children = linkage.parse_children(data.get("children"))
    try:
        with database().session() as s:
            req = linkage.answer(
                s,
                municipality=code,
                request_id=request_id,
                code=None if no_match else _text(data, "code", limit=linkage.MAX_CODE),
                children=children,
                no_match=no_match,
                recorded_by=recorder(),
            )
            out = {"id": req.id, "status": req.status}
    except NotFound:
        return _not_found("link request")
    except Conflict as exc:
        return oauth_error(409, "conflict", str(exc))
    return _json(out)


@bp.post("/municipalities/<code>/guardianships")
@require(LINKAGE, municipality_arg="code")
def add_guardianships(code: str) -> ResponseReturnValue:
    data = _body()
    children = linkage.parse_children(data.get("children"))
    if not children:
        raise ConsentError("children must name at least one child")
    with database().session() as s:
        guardians = linkage.add_children_by_code(
            s,
            municipality=code,
            guardian_code=_text(data, "guardian_code", limit=linkage.MAX_CODE),
            children=children,
            recorded_by=recorder(),
        )
    return _json({"municipality": code, "guardians_linked": len(guardians)})


@bp.post("/municipalities/<code>/guardianships/end")
@require(LINKAGE, municipality_arg="code")
def end_guardianship(code: str) -> ResponseReturnValue:
    data = _body()
    with database().session() as s:
        guardians = linkage.end_guardianship(
            s,
            municipality=code,
            guardian_code=_text(data, "guardian_code", limit=linkage.MAX_CODE),
            child_code=_text(data, "child_code", limit=linkage.MAX_CODE),
            recorded_by=recorder(),
            reason=_text(data, "reason", required=False, limit=500) or None,
        )
    return _json({"municipality": code, "guardianships_ended": len(guardians)})
