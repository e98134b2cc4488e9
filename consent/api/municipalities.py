"""The municipal connectors' routes (`/municipalities/<code>/…`, scope `consent/linkage`, the
token's city must be the path's): who consented to a category since when, link requests to
answer, guardianships to add and end."""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from consent import linkage, records
from consent.api.base import LINKAGE, body, box, json_response, not_found, text
from consent.auth import oauth_error, recorder, require
from consent.linkage import Conflict, NotFound
from consent.models import Municipality, utcnow
from consent.records import ConsentError
from phr_core.webapp import database

bp = Blueprint("municipalities", __name__)

# The connector asks for its vaccination source as `immunization` (the FHIR resource name).
CATEGORY_ALIASES = {"immunization": "vaccination"}
SINCE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _city_exists(code: str) -> bool:
    with database().session() as s:
        return s.get(Municipality, code) is not None


@bp.get("/municipalities/<code>/consents")
@require(LINKAGE, municipality_arg="code")
def city_consents(code: str) -> ResponseReturnValue:
    category = request.args.get("category", "")
    category = CATEGORY_ALIASES.get(category, category)
    if category not in records.CATEGORIES:
        raise ConsentError("category must be one of: " + ", ".join(records.CATEGORIES))
    if not _city_exists(code):
        return not_found("municipality")
    now = utcnow()
    with database().session() as s:
        since = linkage.consented_since(s, code, category, now)
    codes = sorted(since)
    return json_response(
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
    return json_response({"municipality": code, "requests": pending})


@bp.post("/municipalities/<code>/link-requests/<request_id>")
@require(LINKAGE, municipality_arg="code")
def answer_link_request(code: str, request_id: str) -> ResponseReturnValue:
    data = body()
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
                code=None if no_match else text(data, "code", limit=linkage.MAX_CODE),
                children=children,
                no_match=no_match,
                recorded_by=recorder(),
            )
            out = {"id": req.id, "status": req.status}
    except NotFound:
        return not_found("link request")
    except Conflict as exc:
        return oauth_error(409, "conflict", str(exc))
    return json_response(out)


@bp.post("/municipalities/<code>/guardianships")
@require(LINKAGE, municipality_arg="code")
def add_guardianships(code: str) -> ResponseReturnValue:
    data = body()
    children = linkage.parse_children(data.get("children"))
    if not children:
        raise ConsentError("children must name at least one child")
    with database().session() as s:
        guardians = linkage.add_children_by_code(
            s,
            municipality=code,
            guardian_code=text(data, "guardian_code", limit=linkage.MAX_CODE),
            children=children,
            recorded_by=recorder(),
        )
    return json_response({"municipality": code, "guardians_linked": len(guardians)})


@bp.post("/municipalities/<code>/guardianships/end")
@require(LINKAGE, municipality_arg="code")
def end_guardianship(code: str) -> ResponseReturnValue:
    data = body()
    with database().session() as s:
        guardians = linkage.end_guardianship(
            s,
            municipality=code,
            guardian_code=text(data, "guardian_code", limit=linkage.MAX_CODE),
            child_code=text(data, "child_code", limit=linkage.MAX_CODE),
            recorded_by=recorder(),
            reason=text(data, "reason", required=False, limit=500) or None,
        )
    return json_response({"municipality": code, "guardianships_ended": len(guardians)})
