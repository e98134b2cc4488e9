"""Where signed receipts and the keys that verify them are served: the receipt key set at
`PHR_CONSENT_URL/receipts/jwks.json` (public: anyone a person shows a receipt to fetches it) and
a consent's signed receipt for the IdP and PHR-sector callers of the consent API."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from consent import receipts_signed
from consent.api.base import GRANTS_READ, GRANTS_WRITE
from consent.auth import oauth_error, require
from consent.records import ConsentView
from phr_core import receipt_keys
from phr_core.webapp import database, settings

bp = Blueprint("consent_receipts", __name__)
KEYS_MAX_AGE_S = 300  # a rotation reaches verifiers within five minutes


@bp.get(receipt_keys.JWKS_PATH)
def receipt_jwks() -> ResponseReturnValue:
    """Every receipt key, current and retired, as a JWK Set."""
    resp = jsonify(receipt_keys.published_jwks(settings()))
    resp.headers["Cache-Control"] = f"public, max-age={KEYS_MAX_AGE_S}"
    resp.headers["Access-Control-Allow-Origin"] = "*"  # verifiable from any web page
    return resp


@bp.get("/api/v1/consents/<consent_id>/receipt.jws")
@require(GRANTS_READ, GRANTS_WRITE)
def signed_receipt(consent_id: str) -> ResponseReturnValue:
    """The receipt of a consent (`?version=n` for an earlier one) as a compact JWS."""
    version = request.args.get("version", type=int)
    with database().session() as s:
        found = receipts_signed.signed_receipt(s, consent_id, settings(), version=version)
    if found is None:
        return oauth_error(404, "not_found", "no such consent")
    return download(*found)


def download(view: ConsentView, token: str) -> Response:
    """A signed receipt as a file to keep (one line of text, the compact JWS)."""
    resp = Response(token + "\n", mimetype=receipts_signed.MEDIA_TYPE)
    name = receipts_signed.filename(view)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
