"""Flask app factory of the IdP (`gunicorn 'idp.app:create_app()'`)."""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from phr_core.config import Settings
from phr_core.webapp import build_app, settings

bp = Blueprint("idp_index", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return jsonify(service="idp", issuer=settings().issuer)


def create_app(settings: Settings | None = None) -> Flask:
    return build_app("idp", settings, [bp])
