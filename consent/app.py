"""Flask app factory of the consent service's decision API (`gunicorn
'consent.app:create_api_app()'`). The citizen portal, served on the consent service's own port
with these blueprints beside its pages, is `portal.app:create_app()`."""

from __future__ import annotations

from flask import Flask

from consent import cache as consent_cache
from consent.api import bp as api_bp
from consent.linkage import AttributeBox
from consent.notices_api import bp as notices_api_bp
from consent.receipts_api import bp as receipts_api_bp
from federation import publish
from phr_core.config import Settings
from phr_core.rotating_aead import RotatingAead
from phr_core.webapp import build_app, json_error

ATTRIBUTE_KEY_PURPOSE = "consent/link-request-attributes/v1"
# The consent service's own blueprints: the decision API, the notices API and signed receipts.
API_BLUEPRINTS = (api_bp, notices_api_bp, receipts_api_bp)


def install_records(app: Flask) -> None:
    """What both pools (portal and decision API) share: the consent cache, kept fresh across
    processes by its stamp file, and the box that seals link-request attributes."""
    cfg = app.extensions["phr_settings"]
    db = app.extensions["phr_db"]
    stamp = cfg.var_dir / consent_cache.STAMP_FILE
    cache = consent_cache.ConsentCache(db, stamp)
    consent_cache.install(db, stamp, cache)
    app.extensions["consent_cache"] = cache
    app.extensions["consent_box"] = attribute_box(cfg)


def create_api_app(settings: Settings | None = None) -> Flask:
    """The consent decision API alone (`/api/…`, no portal pages), served by its own worker
    pool (PHR_CONSENT_API_PORT): PHR servers and the IdP ask it while a portal page may be
    waiting on them, so the portal must never be able to occupy it (README "What runs where")."""
    app = build_app(
        "consent",
        settings,
        [*API_BLUEPRINTS, publish.blueprint("consent")],
        render_error=json_error,
    )
    install_records(app)
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
        RotatingAead.of(settings.secret("PHR_CONSENT_SECRET_KEY"), ATTRIBUTE_KEY_PURPOSE)
    )
