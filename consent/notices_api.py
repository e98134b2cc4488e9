"""The notices API (consent/API.md, "Notices"):

* `POST /api/v1/arrivals` — the PHR server, after a write that changed something, names the
  (municipality, code) pairs whose records changed (its own client-credentials token, scope
  `consent/arrivals.write`). Each person who reaches such a code gets a notice.
* `GET /api/v1/me/notices` — an app the person granted `consent/notices.read` reads that
  person's notices with its access token (audience the consent service); the grant named in the
  token must be active, belong to the token's subject and app, and include the scope.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from consent import notices
from consent.api.base import body, invalid_request, json_response
from consent.api.grants import grant_status
from consent.auth import caller, oauth_error, require
from consent.models import Notice
from consent.records import ConsentError, as_utc, iso
from phr_core.webapp import database

bp = Blueprint("consent_notices_api", __name__, url_prefix="/api/v1")

ARRIVALS_WRITE = "consent/arrivals.write"
NOTICES_READ = "consent/notices.read"
CITY_RE = re.compile(r"^\d{6}$")
bp.register_error_handler(ConsentError, invalid_request)


@bp.post("/arrivals")
@require(ARRIVALS_WRITE)
def arrivals() -> ResponseReturnValue:
    data = body()
    city = data.get("municipality")
    codes = data.get("codes")
    if not isinstance(city, str) or not CITY_RE.match(city):
        raise ConsentError("municipality must be a six-digit code")
    if (
        not isinstance(codes, list)
        or not 0 < len(codes) <= notices.MAX_CODES
        or not all(isinstance(c, str) and 0 < len(c) <= 128 for c in codes)
    ):
        raise ConsentError(f"codes must be a list of 1 to {notices.MAX_CODES} codes")
    with database().session() as s:
        added = notices.record_arrivals(s, city, codes)
    return json_response({"municipality": city, "codes": len(set(codes)), "notices": added})


def notice_document(n: Notice) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "about": n.relationship,  # self | child
        "params": dict(n.params or {}),
        "created_at": iso(as_utc(n.created_at)),
        "read": n.read_at is not None,
    }


@bp.get("/me/notices")
@require(NOTICES_READ)
def my_notices() -> ResponseReturnValue:
    token = caller()
    grant = grant_status(token.grant_id) if token.grant_id else None
    scopes = grant.get("scopes") if grant is not None else None
    if (
        grant is None
        or grant["status"] != "active"
        or grant["subject"] != token.subject
        or grant["client_id"] != token.client_id
        or not isinstance(scopes, list)
        or NOTICES_READ not in scopes
    ):
        return oauth_error(403, "insufficient_scope", "no active grant of the person's notices")
    with database().session() as s:
        docs = [notice_document(n) for n in notices.inbox(s, token.subject)]
    return json_response({"notices": docs})
