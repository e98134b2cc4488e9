"""The consent API (`/api/v1`, documented in consent/API.md) for the IdP, the PHR server and the
municipal connectors: one blueprint per resource family, nested under `bp`. Every route names
the scopes it accepts; the PHR server's two questions (a grant's status, a subject's patients)
are answered from the in-process cache (consent.cache)."""

from __future__ import annotations

from flask import Blueprint

from consent.api import city_consent, consents, grants, municipalities, patients
from consent.api.base import invalid_request
from consent.records import ConsentError

bp = Blueprint("consent_api", __name__, url_prefix="/api/v1")
for family in (grants, patients, city_consent, consents, municipalities):
    bp.register_blueprint(family.bp)
bp.register_error_handler(ConsentError, invalid_request)
