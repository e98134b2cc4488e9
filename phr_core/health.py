"""`/healthz` (the process answers) and `/readyz` (its database answers and has the schema the
code expects), for load balancers, compose health checks and the run command."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from phr_core import migrations
from phr_core.db import ping

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok", service=current_app.extensions["phr_service"].name)


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    service = current_app.extensions["phr_service"]
    db = current_app.extensions["phr_db"]
    expected = current_app.extensions["phr_schema_head"]
    try:
        ping(db.engine)
        current = migrations.current_revision(service, db.engine)
    except Exception as exc:  # any driver error means "not ready"; say so without the URL
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return jsonify(status="unavailable", service=service.name, database="unreachable"), 503
    if current != expected:
        return (
            jsonify(
                status="unavailable",
                service=service.name,
                database="ok",
                schema=current,
                expected_schema=expected,
                hint=f"run `phr db upgrade {service.name}`",
            ),
            503,
        )
    return jsonify(status="ready", service=service.name, database="ok", schema=current)
