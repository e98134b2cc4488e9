"""Flask app factory of the PHR server (`gunicorn 'phr_server.app:create_app()'`)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from phr_core.config import Settings
from phr_core.webapp import build_app, settings
from phr_server.storage import ResourceCipher

FHIR_JSON = "application/fhir+json"

bp = Blueprint("fhir_index", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return jsonify(service="fhir", base=settings().urls["fhir"], fhirVersion="4.0.1")


def operation_outcome(exc: HTTPException) -> Response:
    """FHIR errors are OperationOutcome resources, never HTML."""
    code = exc.code or 500
    issue_code = {404: "not-found", 405: "not-supported", 400: "invalid"}.get(code, "exception")
    resp = jsonify(
        resourceType="OperationOutcome",
        issue=[{"severity": "error", "code": issue_code, "diagnostics": exc.description}],
    )
    resp.status_code = code
    resp.mimetype = FHIR_JSON
    return resp


def create_app(settings: Settings | None = None) -> Flask:
    app = build_app("fhir", settings, [bp], render_error=operation_outcome)
    # Built at start so a missing data key fails the start, not the first write.
    app.extensions["phr_cipher"] = ResourceCipher(
        app.extensions["phr_settings"].secret("PHR_FHIR_DATA_KEY")
    )
    return app
