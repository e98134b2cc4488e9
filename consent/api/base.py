"""What every route module of the consent API shares: the scopes the routes name, the app's
consent cache and attribute box, and JSON in (checked fields) and out (never cached)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request

from consent.auth import oauth_error
from consent.cache import ConsentCache
from consent.linkage import AttributeBox
from consent.records import ConsentError

GRANTS_READ = "consent/grants.read"
GRANTS_WRITE = "consent/grants.write"
PATIENTS_READ = "consent/patients.read"
LINKAGE = "consent/linkage"

MAX_FIELD = 255


def cache() -> ConsentCache:
    return current_app.extensions["consent_cache"]


def box() -> AttributeBox:
    return current_app.extensions["consent_box"]


def not_found(what: str) -> Response:
    return oauth_error(404, "not_found", f"no such {what}")


def invalid_request(exc: ConsentError) -> Response:
    """A ConsentError raised by a route (a bad field, a refused change) as OAuth's 400."""
    return oauth_error(400, "invalid_request", str(exc))


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ConsentError("the body must be a JSON object")
    return data


def text(data: dict[str, Any], name: str, *, required: bool = True, limit: int = MAX_FIELD) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise ConsentError(f"{name} must be a string of 1 to {limit} characters")
    return value


def strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConsentError(f"{name} must be a list of strings")
    return value


def language(data: dict[str, Any]) -> str:
    lang = data.get("language", "ja")
    if lang not in ("ja", "en"):
        raise ConsentError("language must be ja or en")
    return lang


def json_response(payload: object, status: int = 200) -> Response:
    resp = jsonify(payload)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def reason(data: object) -> str | None:
    """The optional free-text `reason` of a revocation or withdrawal body."""
    value = data.get("reason") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
