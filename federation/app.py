"""Flask app factory of the federation authority (`gunicorn 'federation.app:create_app()'`):
the trust anchor, or with PHR_FEDERATION_AUTHORITY_HINTS an intermediate (a prefecture)."""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from federation.authority import endpoints
from phr_core.config import Settings, load_settings
from phr_core.webapp import build_app

bp = Blueprint("federation_index", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return jsonify(
        service="federation",
        role="trust_anchor" if endpoints.is_anchor() else "intermediate",
        entity_id=endpoints.entity_id(),
        entity_configuration=endpoints.entity_id() + "/.well-known/openid-federation",
    )


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    return build_app("federation", settings, [bp, endpoints.bp])
