"""Flask app factory of the consent service and portal (`gunicorn 'consent.app:create_app()'`)."""

from __future__ import annotations

from flask import Flask

from consent.portal.views import bp as portal_bp
from consent.portal.views import error_page
from phr_core.config import Settings
from phr_core.webapp import build_app


def create_app(settings: Settings | None = None) -> Flask:
    return build_app(
        "consent",
        settings,
        [portal_bp],
        render_error=error_page,
    )
