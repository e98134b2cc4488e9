"""Flask app factory of the PHR server (`gunicorn 'phr_server.app:create_app()'`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response
from flask.typing import ResponseReturnValue
from sqlalchemy import event
from werkzeug.exceptions import HTTPException

from federation import publish
from federation.resource import for_settings as federated_verifier
from phr_core import outbound
from phr_core.config import Settings
from phr_core.sealing import OpeningKeys
from phr_core.secrets import derive_key
from phr_core.tokens import AccessTokenVerifier, JwksCache
from phr_core.webapp import build_app, settings
from phr_server.arrivals import SCOPE as ARRIVALS_SCOPE
from phr_server.arrivals import ArrivalNotifier
from phr_server.audit_batch import AuditBatch
from phr_server.authn import TokenCache
from phr_server.erase import bp as erase_bp
from phr_server.metadata import bp as metadata_bp
from phr_server.policy import (
    ClientCredentials,
    ConsentDirectory,
    HttpConsentDirectory,
    PatientResolver,
)
from phr_server.reads import bp as reads_bp
from phr_server.repository import Repository
from phr_server.storage import Keyring
from phr_server.writes import bp as writes_bp

FHIR_JSON = "application/fhir+json"

bp = Blueprint("fhir_index", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    body = {"service": "fhir", "base": settings().urls["fhir"], "fhirVersion": "4.0.1"}
    return Response(json.dumps(body), content_type="application/json")


def operation_outcome(exc: HTTPException) -> Response:
    """FHIR errors are OperationOutcome resources, never HTML."""
    code = exc.code or 500
    issue_code = {
        404: "not-found",
        405: "not-supported",
        400: "invalid",
        413: "too-long",  # request_limits.py: body or URL over the configured limit
        414: "too-long",
    }.get(code, "exception")
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": issue_code, "diagnostics": exc.description}],
    }
    return Response(json.dumps(body), status=code, content_type=FHIR_JSON)


def _async_commit(dbapi_conn: Any, _record: Any) -> None:
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    dbapi_conn.execute("SET synchronous_commit = off")
    dbapi_conn.autocommit = autocommit


def create_app(
    settings: Settings | None = None,
    consent: ConsentDirectory | None = None,
    service_token: Callable[[], str | None] | None = None,
) -> Flask:
    """The PHR server. `consent` replaces the HTTP consent client (tests, single process);
    `service_token` gives the bearer token for the consent API (e.g. a `ClientCredentials`
    at the IdP); without it the caller's own access token is forwarded."""
    app = build_app(
        "fhir",
        settings,
        [bp, metadata_bp, erase_bp, reads_bp, writes_bp, publish.blueprint("fhir")],
        render_error=operation_outcome,
    )
    s: Settings = app.extensions["phr_settings"]
    master = s.secret("PHR_FHIR_DATA_KEY")  # read at start: a missing key fails the start
    keyring = Keyring(master)
    app.extensions["phr_keyring"] = keyring
    app.extensions["phr_cursor_key"] = derive_key(master.split()[0], "phr_server/page-cursor/v1")
    app.extensions["phr_repo"] = Repository(keyring, app.extensions["phr_cursor_key"])
    # Reads' AuditEvents, committed before each response leaves (audit_batch.py).
    app.extensions["phr_audit"] = AuditBatch(app.extensions["phr_db"], app.extensions["phr_repo"])
    # Tokens sealed to this server's own keys (phr_core.sealing; read again after a rotation),
    # or, from an IdP that found no key of ours, under the shared PHR_ACCESS_TOKEN_KEY.
    sealing = OpeningKeys(s, "FHIR")
    home = AccessTokenVerifier(
        s.issuer,
        s.urls["fhir"],
        JwksCache(s.issuer + "/jwks", outbound=outbound.for_settings(s)),
        decryption_key=sealing,
    )
    # Tokens of other OpenID providers that chain to the federation's anchor count too.
    app.extensions["phr_verifier"] = federated_verifier(s, home, sealing)
    app.extensions["phr_token_cache"] = TokenCache()
    if service_token is None and consent is None:
        # The PHR server's own client-credentials token for the consent API.
        service_token = ClientCredentials(
            s.issuer + "/token", s.option("PHR_FHIR_CLIENT_ID"), s.secret("PHR_FHIR_CLIENT_SECRET")
        )
    # The consent decision API's own worker pool (PHR_CONSENT_API_URL), never the portal's:
    # a portal page waits on this server while this server waits on the consent service.
    app.extensions["phr_consent"] = consent or HttpConsentDirectory(
        s.consent_api_url, service_token=service_token
    )
    if consent is None:  # a real consent service: tell it whose records arrive (arrivals.py)
        app.extensions["phr_arrivals"] = ArrivalNotifier(
            s.consent_api_url,
            ClientCredentials(
                s.issuer + "/token",
                s.option("PHR_FHIR_CLIENT_ID"),
                s.secret("PHR_FHIR_CLIENT_SECRET"),
                scope=ARRIVALS_SCOPE,
            ),
        )
    app.extensions["phr_patients"] = PatientResolver()
    engine = app.extensions["phr_db"].engine
    # Reads (api.handle) need no transaction: on PostgreSQL their connections commit each
    # statement by itself (the same pool, switched per checkout).
    app.extensions["phr_read_engine"] = (
        engine.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql"
        else engine
    )
    if engine.dialect.name == "postgresql":
        # Reads commit nothing of their own, so their connections need no WAL flush; every
        # write turns it back on for its own transaction (api._write_audit), and the reads'
        # AuditEvents commit on a connection of their own with it on (audit_batch.py).
        event.listen(engine, "connect", _async_commit)
    # SQLite runs WAL with synchronous=NORMAL for every service (phr_core.db): a commit
    # survives the crash of a server process (what "every read is audited" needs), not a
    # power cut; an fsync per batch of AuditEvents would dominate.
    return app
