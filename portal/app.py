"""Flask app factory of the citizen portal (`gunicorn 'portal.app:create_app()'`), served on
the consent service's port (PHR_CONSENT_PORT) with the consent service's API blueprints beside
its pages.

One process, not two: the portal's pages read and write the consent service's records (grants,
links, guardianship) in its own database transactions, so a separate portal process would only
add a network hop and a second origin for the same data. The decision API, which PHR servers
and the IdP wait on, already has a pool of its own (`consent.app:create_api_app()`) that
portal pages cannot occupy."""

from __future__ import annotations

from flask import Flask, Response, request, session
from werkzeug.exceptions import HTTPException

from consent.app import API_BLUEPRINTS, install_records
from federation import publish
from phr_core.config import Settings
from phr_core.webapp import build_app, json_error
from portal.auth import bp as auth_bp
from portal.deletion import bp as deletion_bp
from portal.notices import bp as notices_bp
from portal.pages import error_page
from portal.plus import BLUEPRINTS as PLUS_BLUEPRINTS
from portal.receipts import bp as receipts_bp
from portal.sources import bp as sources_bp
from portal.views import bp as views_bp

PORTAL_SESSION_COOKIE = "phr_portal_session"


def render_error(exc: HTTPException) -> Response:
    """The API answers errors as JSON (RFC 6749 shape); the portal as a readable page."""
    if request.path.startswith("/api/"):
        return json_error(exc)
    return error_page(exc)


def create_app(settings: Settings | None = None) -> Flask:
    blueprints = [views_bp, auth_bp, *PLUS_BLUEPRINTS, sources_bp, deletion_bp, notices_bp]
    blueprints.append(receipts_bp)
    blueprints += [*API_BLUEPRINTS, publish.blueprint("consent")]
    app = build_app("consent", settings, blueprints, render_error=render_error)
    # Its own cookie name: cookies are not kept apart by port, and on a development host the
    # IdP's `session` cookie (same host, another port) would otherwise overwrite the portal's.
    app.config["SESSION_COOKIE_NAME"] = PORTAL_SESSION_COOKIE
    # PHR_CONSENT_SECRET_KEY may hold several secrets, newest first (`phr consent
    # rotate-secret-key`): the newest signs session cookies, the older still open theirs.
    newest, *older = app.config["SECRET_KEY"].split()
    app.config.update(SECRET_KEY=newest, SECRET_KEY_FALLBACKS=older)
    install_records(app)

    @app.before_request
    def _resign_session() -> None:
        # While PHR_CONSENT_SECRET_KEY holds an older key (`phr consent rotate-secret-key`),
        # every session used is signed again with the newest, so that retiring the older
        # key signs out only sessions idle longer than the overlap (their tokens are gone).
        if app.config.get("SECRET_KEY_FALLBACKS") and session:
            session.modified = True

    return app
