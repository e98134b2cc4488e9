"""The card authority stand-in as a small Flask app (`idp.authority_sim.app:create_app()`):

GET  /ocsp/<base64 request>   OCSP (RFC 6960 appendix A.1, GET form)
POST /ocsp                    OCSP (application/ocsp-request)
GET  /crl                     the current CRL, DER (application/pkix-crl)
GET  /ca/root.der, /ca/issuing.der   CA certificates (the AIA caIssuers target)
POST /renewal-links  {"new": sha256 hex} or {"old": …}   signed old→new links (POST, so no
                     certificate fingerprint ever sits in a URL or an access log)
GET  /healthz, /readyz
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from idp.authority_sim.ca import Authority, init_authority
from phr_core.config import Settings, load_settings

bp = Blueprint("card_authority", __name__)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_OCSP_REQUEST = 10_000


def _authority() -> Authority:
    return current_app.extensions["card_authority"]


def _ocsp(der: bytes) -> Response:
    return Response(_authority().ocsp_response(der), mimetype="application/ocsp-response")


@bp.post("/ocsp")
def ocsp_post() -> ResponseReturnValue:
    data = request.get_data(cache=False)
    if len(data) > MAX_OCSP_REQUEST:
        abort(413)
    return _ocsp(data)


@bp.get("/ocsp/<path:encoded>")
def ocsp_get(encoded: str) -> ResponseReturnValue:
    try:
        der = base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        der = b""
    return _ocsp(der)


@bp.get("/crl")
def crl() -> ResponseReturnValue:
    return Response(_authority().crl(), mimetype="application/pkix-crl")


@bp.get("/ca/<which>.der")
def ca_cert(which: str) -> ResponseReturnValue:
    auth = _authority()
    cert = {"root": auth.root, "issuing": auth.issuing_ca}.get(which)
    if cert is None:
        abort(404)
    return Response(cert.public_bytes(serialization.Encoding.DER), mimetype="application/pkix-cert")


@bp.post("/renewal-links")
def renewal_links() -> ResponseReturnValue:
    query = request.get_json(silent=True)
    query = query if isinstance(query, dict) else {}
    old = str(query.get("old") or "").lower() or None
    new = str(query.get("new") or "").lower() or None
    if not (old or new) or any(v is not None and not _HEX64.match(v) for v in (old, new)):
        return jsonify(
            error="invalid_request", error_description="give old= or new= (sha256 hex)"
        ), 400
    signer = base64.b64encode(
        _authority().issuing_ca.public_bytes(serialization.Encoding.DER)
    ).decode()
    return jsonify(links=_authority().links(old=old, new=new), signer=signer)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok", service="card_authority")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    if not _authority().initialised:
        return jsonify(
            status="unavailable", service="card_authority", hint="run `phr card init`"
        ), 503
    return jsonify(status="ready", service="card_authority")


def create_app(settings: Settings | None = None, authority: Authority | None = None) -> Flask:
    """The authority app; creates the CAs on first start. Refused in production mode."""
    settings = settings or load_settings()
    authority = authority or init_authority(settings)
    app = Flask("idp.authority_sim")
    app.extensions["card_authority"] = authority
    app.extensions["phr_settings"] = settings
    app.register_blueprint(bp)
    return app
