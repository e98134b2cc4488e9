"""App grants (`/grants`, `/subjects/<subject>/grants`): the IdP records, lists and revokes the
grants of its consent screen; the PHR server reads one grant's status from the cache."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from consent import records
from consent.api.base import (
    GRANTS_READ,
    GRANTS_WRITE,
    body,
    cache,
    json_response,
    language,
    not_found,
    reason,
    strings,
    text,
)
from consent.auth import in_callers_namespace, namespaced, recorder, require
from consent.models import utcnow
from consent.records import RECIPIENT, ConsentError, grant_key
from phr_core.webapp import database

bp = Blueprint("grants", __name__)

DEFAULT_GRANT_DAYS = 365  # an app grant without expires_at lasts a year (consent.md §8)
MAX_DETAILS = 8000  # an app's words and links as shown on the consent screen


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
        return not_found("grant")
    return json_response(doc)


@bp.post("/grants")
@require(GRANTS_WRITE, federated=True)
def create_grant() -> ResponseReturnValue:
    data = body()
    scopes = strings(data, "scopes")
    if not scopes:
        raise ConsentError("scopes must name at least one scope")
    expires = records.parse_time(data.get("expires_at"), "expires_at")
    now = utcnow()
    with database().session() as s:
        view = records.create(
            s,
            kind=RECIPIENT,
            subject=namespaced(text(data, "subject")),
            actor=text(data, "client_id"),
            actor_name=text(data, "client_name", required=False, limit=200),
            categories=strings(data, "categories"),
            scopes=scopes,
            purpose=text(data, "purpose", required=False, limit=2000),
            period_end=expires or now + timedelta(days=DEFAULT_GRANT_DAYS),
            recorded_by=recorder(),
            collection_method=text(data, "collection_method", required=False, limit=64)
            or "idp-consent-screen",
            language=language(data),
            now=now,
            details=_details(data),
        )
        doc = records.grant_document(view, now)
    resp = json_response(doc, 201)
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
    return json_response({"subject": subject, "grants": docs})


@bp.post("/grants/<grant_id>/revoke")
@require(GRANTS_WRITE, federated=True)
def revoke_grant(grant_id: str) -> ResponseReturnValue:
    data = request.get_json(silent=True) or {}
    with database().session() as s:
        view = records.revoke_grant(
            s,
            grant_id,
            in_callers_namespace,
            recorded_by=recorder(),
            reason=reason(data),
        )
        if view is None:
            return not_found("grant")
        doc = records.grant_document(view)
    return json_response(doc)
