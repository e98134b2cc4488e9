"""Flask app factory of the connector's status service (`gunicorn 'connectors.app:create_app()'`).

The connector's work is batch runs (`phr connector …`); this small app lets the city's
monitoring see that it is alive and how recent runs went, without any personal data."""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from connectors.models import Run
from federation import publish
from phr_core.config import Settings
from phr_core.webapp import build_app, database

bp = Blueprint("connector_status", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    with database().session() as s:
        runs = s.scalars(select(Run).order_by(Run.id.desc()).limit(20)).all()
        recent = [
            {
                "id": r.id,
                "municipality": r.municipality_code,
                "source": r.source,
                "status": r.status,
                "started_at": r.started_at.isoformat(),
                "rows_read": r.rows_read,
                "rows_sent": r.rows_sent,
                "rows_rejected": r.rows_rejected,
            }
            for r in runs
        ]
    return jsonify(service="connector", recent_runs=recent)


def create_app(settings: Settings | None = None) -> Flask:
    return build_app("connector", settings, [bp, publish.blueprint("connector")])
