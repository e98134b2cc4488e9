"""The person's consent receipts, signed (consent.receipts_signed): a file they keep and can
show anyone, who checks it against the consent service's published keys (docs/receipts.md)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request
from flask.typing import ResponseReturnValue

from consent import receipts_api, receipts_signed, records
from phr_core.catalogs import tables
from phr_core.webapp import database, settings
from portal.session import current_subject, sign_in_first

bp = Blueprint("portal_receipts", __name__)

WORDS: dict[str, dict[str, str]] = tables("portal.receipts")  # phr_core/translations


@bp.app_context_processor
def _receipt_words() -> dict[str, Any]:
    """The receipt link's words on the pages that list consents (`rw.key`)."""
    return {"receipt_words": WORDS.__getitem__}


@bp.get("/me/consents/<consent_id>/receipt")
def download(consent_id: str) -> ResponseReturnValue:
    """One of the person's own consents (`?version=n`: as it stood then), as a signed receipt."""
    subject = current_subject()
    if subject is None:
        return sign_in_first()
    version = request.args.get("version", type=int)
    with database().session() as s:
        view = records.get(s, consent_id)
        if view is None or view.record.subject != subject:
            abort(404)  # someone else's consent is not there, as far as this person can tell
        found = receipts_signed.signed_receipt(s, consent_id, settings(), version=version)
    if found is None:
        abort(404)
    return receipts_api.download(*found)
