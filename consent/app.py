"""Flask app factory of the consent service and portal (`gunicorn 'consent.app:create_app()'`)."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from consent import cache as consent_cache
from consent.api import bp as api_bp
from consent.linkage import AttributeBox
from consent.notices_api import bp as notices_api_bp
from consent.portal.auth import bp as portal_auth_bp
from consent.portal.deletion import bp as portal_deletion_bp
from consent.portal.notices import bp as portal_notices_bp
from consent.portal.plus import BLUEPRINTS as PORTAL_PLUS_BLUEPRINTS
from consent.portal.sources import bp as portal_sources_bp
from consent.portal.views import bp as portal_bp
from consent.portal.views import error_page
from phr_core.config import Settings
from phr_core.secrets import derive_key
from phr_core.webapp import build_app, json_error

ATTRIBUTE_KEY_PURPOSE = "consent/link-request-attributes/v1"
PORTAL_SESSION_COOKIE = "phr_portal_session"


def render_error(exc: HTTPException) -> Response:
    """The API answers errors as JSON (RFC 6749 shape); the portal as a readable page."""
    if request.path.startswith("/api/"):
        return json_error(exc)
    return error_page(exc)


def _install_records(app: Flask) -> None:
    """What both pools (portal and decision API) share: the consent cache, kept fresh across
    processes by its stamp file, and the box that seals link-request attributes."""
    cfg = app.extensions["phr_settings"]
    db = app.extensions["phr_db"]
    stamp = cfg.var_dir / consent_cache.STAMP_FILE
    cache = consent_cache.ConsentCache(db, stamp)
    consent_cache.install(db, stamp, cache)
    app.extensions["consent_cache"] = cache
    app.extensions["consent_box"] = attribute_box(cfg)


def create_app(settings: Settings | None = None) -> Flask:
    blueprints = [portal_bp, portal_auth_bp, *PORTAL_PLUS_BLUEPRINTS, api_bp]
    blueprints += [portal_sources_bp, portal_deletion_bp, portal_notices_bp, notices_api_bp]
    app = build_app("consent", settings, blueprints, render_error=render_error)
    # Its own cookie name: cookies are not kept apart by port, and on a development host the
    # IdP's `session` cookie (same host, another port) would otherwise overwrite the portal's.
    app.config["SESSION_COOKIE_NAME"] = PORTAL_SESSION_COOKIE
    _install_records(app)
    return app


def create_api_app(settings: Settings | None = None) -> Flask:
    """The consent decision API alone (`/api/…`, no portal pages), served by its own worker
    pool (PHR_CONSENT_API_PORT): PHR servers and the IdP ask it while a portal page may be
    waiting on them, so the portal must never be able to occupy it (README "What runs where")."""
    app = build_app("consent", settings, [api_bp, notices_api_bp], render_error=json_error)
    _install_records(app)
    cfg = app.extensions["phr_settings"]

    @app.get("/")
    def index() -> dict[str, str]:
        """What this port is, for whoever opens it in a browser."""
        return {
            "service": "consent decision API (the consent service's /api/ in its own pool)",
            "api": "/api/v1 (consent/API.md)",
            "portal": cfg.urls["consent"] + "/",
        }

    return app


def attribute_box(settings: Settings) -> AttributeBox:
    """Encryption of pending link requests' card-verified attributes, keyed from the service's
    secret for this one purpose."""
    return AttributeBox(
        derive_key(settings.secret("PHR_CONSENT_SECRET_KEY"), ATTRIBUTE_KEY_PURPOSE)
    )
