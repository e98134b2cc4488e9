"""Flask app factory of the consent service and portal (`gunicorn 'consent.app:create_app()'`)."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from consent import cache as consent_cache
from consent.api import bp as api_bp
from consent.linkage import AttributeBox
from consent.portal.views import bp as portal_bp
from consent.portal.views import error_page
from phr_core.config import Settings
from phr_core.secrets import derive_key
from phr_core.webapp import build_app, json_error

ATTRIBUTE_KEY_PURPOSE = "consent/link-request-attributes/v1"


def render_error(exc: HTTPException) -> Response:
    """The API answers errors as JSON (RFC 6749 shape); the portal as a readable page."""
    if request.path.startswith("/api/"):
        return json_error(exc)
    return error_page(exc)


def create_app(settings: Settings | None = None) -> Flask:
    app = build_app("consent", settings, [portal_bp, api_bp], render_error=render_error)
    cfg = app.extensions["phr_settings"]
    db = app.extensions["phr_db"]
    stamp = cfg.var_dir / consent_cache.STAMP_FILE
    cache = consent_cache.ConsentCache(db, stamp)
    consent_cache.install(db, stamp, cache)
    app.extensions["consent_cache"] = cache
    app.extensions["consent_box"] = attribute_box(cfg)
    return app


def attribute_box(settings: Settings) -> AttributeBox:
    """Encryption of pending link requests' card-verified attributes, keyed from the service's
    secret for this one purpose."""
    return AttributeBox(
        derive_key(settings.secret("PHR_CONSENT_SECRET_KEY"), ATTRIBUTE_KEY_PURPOSE)
    )
